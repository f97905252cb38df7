// From an App's source to what the reconciler builds and runs: the build spec and the
// image tag it produces. Pure: the tag is a hash of the source commit, the directory and
// the builder's version, so the same source builds once and a reverted manifest finds
// its old image again.
import { createHash } from 'node:crypto';
import type { AppSource } from '../../schemas/index.js';
import { StalledError } from '../errors.js';
import type { BuildSpec } from '../model.js';

/** Bump when generated Dockerfiles or build steps change what an image holds. */
export const BUILDER_VERSION = 'mlink-build-1';

export function buildKey(commit: string, path: string): string {
  return createHash('sha256').update(JSON.stringify([BUILDER_VERSION, commit, path])).digest('hex').slice(0, 24);
}

/**
 * A built image's name in desired state: mlink/<project>/<name>:<key>, with no registry in
 * it, so an app's identity (its spec hash) does not change with the registry's address.
 * Each host reaches the registry at its own address: see `atRegistry`.
 */
export function builtImage(project: string, name: string, key: string): string {
  return `mlink/${project}/${name}:${key}`;
}

/** A built image as a host pushes or pulls it: <registry as that host reaches it>/mlink/<project>/<name>:<key>. */
export function atRegistry(registry: string, image: string): string {
  return `${registry}/${image}`;
}

/** The image and build spec for an App's source, or null for `source.image`. Throws StalledError when it cannot be built. */
export function compileSource(file: string, project: string, name: string, source: AppSource): { image: string; build: BuildSpec } | null {
  if ('image' in source) return null;
  if ('files' in source) {
    throw new StalledError('BuildFailed', file, 'spec.source.files inline in a manifest is not built; send the files with update_app (they are committed to the app\'s source repo and the manifest pins the commit)');
  }
  let build: Omit<BuildSpec, 'key'>;
  if ('git' in source) {
    if (!source.git.commit) throw new StalledError('BuildFailed', file, `spec.source.git has no commit; update_app with source.git fetches ${source.git.url}@${source.git.ref} and pins the commit`);
    build = { repo: { project, name }, commit: source.git.commit, path: source.git.path ?? '', origin: { url: source.git.url, ref: source.git.ref } };
  } else {
    const [p, n] = source.repo.app ? (source.repo.app.split('/') as [string, string]) : [project, name];
    build = { repo: { project: p, name: n }, commit: source.repo.commit, path: source.repo.path ?? '' };
  }
  const key = buildKey(build.commit, build.path);
  return { image: builtImage(project, name, key), build: { key, ...build } };
}
