// Copying an image from one Docker to another host's: `docker save` here streamed into
// `docker load` there, over the host's own Docker client (its SSH connection for a
// remote host). No registry is needed, which is how base images reach a new host.
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { Host } from './host.js';

/** The image's id on a Docker, or undefined when it has none of that name. */
export async function imageId(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return undefined;
    throw e;
  }
}

/** Reads a Docker progress stream (JSON lines) to its end; throws the first error it reports. */
export async function drainProgress(stream: NodeJS.ReadableStream, what: string): Promise<string[]> {
  const lines: string[] = [];
  let partial = '';
  for await (const chunk of stream as Readable) {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  }
  if (partial.trim()) lines.push(partial);
  for (const line of lines) {
    let msg: { error?: string; errorDetail?: { message?: string } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      continue;
    }
    if (msg.error) throw new Error(`${what}: ${msg.errorDetail?.message ?? msg.error}`);
  }
  return lines;
}

/**
 * Copies `ref` from `from` into `to`'s Docker unless `to` already has the same image
 * (save/load keeps image ids). Returns whether it copied.
 */
export async function copyImage(from: Docker, to: Pick<Host, 'docker' | 'name'>, ref: string): Promise<boolean> {
  const want = await imageId(from, ref);
  if (!want) throw new Error(`image ${ref} is not on this machine; run \`mlink setup\` to make it`);
  if ((await imageId(to.docker, ref)) === want) return false;
  const saved = await from.getImage(ref).get();
  const res = await to.docker.loadImage(saved, { quiet: true });
  await drainProgress(res, `loading ${ref} into host ${to.name}`);
  const got = await imageId(to.docker, ref);
  if (got !== want) throw new Error(`loading ${ref} into host ${to.name}: the image there is ${got ?? 'missing'} after the load, expected ${want}`);
  return true;
}
