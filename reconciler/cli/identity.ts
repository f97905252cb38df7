// Who a human's commit from the CLI is authored by: --author "Name <email>", else git's
// own settings (GIT_AUTHOR_*, user.name/user.email), else the login on this machine.
import { execFileSync } from 'node:child_process';
import { hostname, userInfo } from 'node:os';
import type { Identity } from '../state/store.js';

export function humanIdentity(author: string | undefined): Identity {
  const m = author ? /^(.+?)\s*<([^>]+)>$/.exec(author) : null;
  if (m?.[1] && m[2]) return { name: m[1], email: m[2] };
  const git = (key: string): string | undefined => {
    try { return execFileSync('git', ['config', '--get', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined; } catch { return undefined; }
  };
  const name = process.env.GIT_AUTHOR_NAME ?? git('user.name') ?? userInfo().username;
  const email = process.env.GIT_AUTHOR_EMAIL ?? git('user.email') ?? `${userInfo().username}@${hostname()}`;
  return { name, email };
}
