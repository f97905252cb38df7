// Lays down a new state repo: a bare git repository (like one on a git server: clone it
// to read or review, push to it to change it) whose first commit on `main` is
// state-repo-template/ with the cluster's age public key in mlink.yaml. The private key
// goes to the data dir, never into git.
import git from 'isomorphic-git';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { validateClusterConfig } from '../../schemas/index.js';
import { CA_REPO_PATH, ensureClusterCa } from '../tls/ca-store.js';
import { CLUSTER_KEY_FILE, generateClusterKey, loadClusterKey, saveClusterKey } from './secrets.js';
import { MAIN, SYSTEM, StateStore } from './store.js';
import type { Change } from './tree.js';

export const TEMPLATE_DIR = fileURLToPath(new URL('../../state-repo-template/', import.meta.url));

export interface InitOptions { dir: string; keysDir: string; baseDomain?: string; clusterName?: string }
export interface InitResult { dir: string; commit: string | null; recipient: string; keyFile: string; created: boolean; /** The CA's root certificate in the keys dir (also at tls/ca.pem in the repo). */ caFile: string }

const caMessage = 'Add the cluster CA\'s root certificate\n\nApps\' HTTPS certificates are signed by it; clients and auditors trust it from\ntls/ca.pem (`mlink ca export`). Its private key stays in the data dir.\n';

async function templateFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else out.push(relative(root, path).split('\\').join('/'));
    }
  };
  await walk(root);
  return out.sort();
}

export async function initStateRepo(opts: InitOptions): Promise<InitResult> {
  const dir = resolve(opts.dir);
  const keyFile = join(opts.keysDir, CLUSTER_KEY_FILE);
  const key = existsSync(keyFile) ? await loadClusterKey(opts.keysDir) : await generateClusterKey();
  if (!existsSync(keyFile)) await saveClusterKey(opts.keysDir, key);

  // The cluster's CA: its root key stays in the keys dir; its certificate goes into git.
  const ca = await ensureClusterCa(opts.keysDir, { commonName: `ml.ink internal CA (${opts.clusterName ?? 'cluster'})` });

  if (existsSync(join(dir, 'HEAD')) || existsSync(join(dir, '.git'))) {
    const store = StateStore.open(dir);
    const head = await store.resolve(MAIN);
    if (head) {
      // A repo from before the CA (or a CA made anew after its root was lost) gets the root it must trust.
      if ((await (await store.view(MAIN)).readText(CA_REPO_PATH)) === ca.change.content) return { dir, commit: head, recipient: key.recipient, keyFile, created: false, caFile: ca.certFile };
      const { commit } = await store.commit({ ref: MAIN, author: SYSTEM, message: caMessage, prepare: async () => [ca.change] });
      return { dir, commit, recipient: key.recipient, keyFile, created: false, caFile: ca.certFile };
    }
  } else if (existsSync(dir) && (await readdir(dir)).length > 0) {
    throw new Error(`${dir} exists and is not empty; choose an empty or new directory`);
  }

  await git.init({ fs, dir, gitdir: dir, bare: true, defaultBranch: 'main' });
  const store = StateStore.open(dir);
  const changes: Change[] = [];
  for (const path of await templateFiles(TEMPLATE_DIR)) {
    let text = await readFile(join(TEMPLATE_DIR, path), 'utf8');
    if (path === 'mlink.yaml') {
      const doc = parseDocument(text);
      doc.setIn(['spec', 'secrets', 'recipients'], doc.createNode([key.recipient], { flow: false }));
      if (opts.baseDomain) doc.setIn(['spec', 'baseDomain'], opts.baseDomain);
      if (opts.clusterName) doc.setIn(['metadata', 'name'], opts.clusterName);
      validateClusterConfig('mlink.yaml', doc.toJS());
      text = doc.toString();
    }
    changes.push({ path, content: text });
  }
  changes.push(ca.change);
  const { commit } = await store.commit({
    ref: MAIN,
    author: SYSTEM,
    message: 'Initialise the ml.ink state repo\n\nLayout, README for reviewers and auditors, examples, and the cluster\nconfig with this cluster\'s age public key, and the root certificate of\nthe cluster\'s CA (tls/ca.pem), which signs apps\' HTTPS certificates.\n',
    prepare: async () => changes,
  });
  return { dir, commit, recipient: key.recipient, keyFile, created: true, caFile: ca.certFile };
}
