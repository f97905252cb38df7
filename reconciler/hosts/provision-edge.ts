// The edge of a runtime host, as a provisioning step: Traefik in the container
// `mlink-edge`, from an image built there from this machine's Traefik binary (with the
// libraries it loads) on mlink/busybox, serving the routes in /var/lib/mlink/routes on
// the host's own addresses. What it runs is rendered in provision-commands.ts.
import type Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { waitFor } from '../../infra/proc.js';
import type { StepOf } from '../../infra/setup/step.js';
import { LABEL, MANAGED_BY } from '../model.js';
import { demux } from '../status/app-logs.js';
import { REMOTE_EDGE } from './cluster.js';
import { must } from './host.js';
import { drainProgress, imageId } from './image-copy.js';
import { EDGE_CONTAINER, EDGE_DIR, cmd, edgeContainer, edgeDefaultCertificate, edgeDockerfile, edgeImage, edgeStaticConfig, lddPaths } from './provision-commands.js';
import type { ProvisionCtx } from './provision.js';

async function edgeAnswers(c: ProvisionCtx): Promise<boolean> {
  const r = await c.host.request(`${REMOTE_EDGE.api}/ping`, { timeoutMs: 2000 }).catch(() => undefined);
  return r?.status === 200;
}

/** The libraries this machine's Traefik binary loads, or none when it is static (`ldd` says "not a dynamic executable"). */
function traefikLibs(binary: string): string[] {
  try {
    return lddPaths(execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch {
    return [];
  }
}

/** Adds a local file to a tar stream (its content, the link followed) and resolves when it is written. */
function addFile(pack: tar.Pack, name: string, path: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ name, size: statSync(path).size, mode, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
    createReadStream(path).on('error', reject).pipe(entry);
  });
}

/** The build context of the edge image: Dockerfile, static config, this machine's Traefik binary (streamed) and the libraries it loads. */
function edgeContext(c: ProvisionCtx): NodeJS.ReadableStream {
  const pack = tar.pack();
  const libs = traefikLibs(c.cfg.traefik.binary);
  pack.entry({ name: 'Dockerfile', mtime: new Date(0) }, edgeDockerfile(c.cfg.images.busybox, libs.length > 0));
  pack.entry({ name: 'traefik.yaml', mtime: new Date(0) }, edgeStaticConfig(c.edge));
  void (async () => {
    for (const lib of libs) await addFile(pack, `rootfs${lib}`, lib, 0o755);
    await addFile(pack, 'traefik', c.cfg.traefik.binary, 0o755);
    pack.finalize();
  })().catch((e: Error) => pack.destroy(e));
  return pack;
}

function edgeImageOf(c: ProvisionCtx): string {
  return edgeImage(c.edge, edgeDockerfile(c.cfg.images.busybox, traefikLibs(c.cfg.traefik.binary).length > 0));
}

async function ensureDefaultCertificate(c: ProvisionCtx): Promise<void> {
  const dc = edgeDefaultCertificate();
  if (!(await c.host.files.read(dc.certFile)) || !(await c.host.files.read(dc.keyFile))) {
    const dir = mkdtempSync(join(tmpdir(), 'mlink-edge-cert-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '3650', '-subj', `/CN=mlink default certificate ${c.host.name}`], { stdio: 'pipe' });
      await c.host.files.write(dc.keyFile, readFileSync(join(dir, 'key.pem'), 'utf8'), { mode: 0o600 });
      await c.host.files.write(dc.certFile, readFileSync(join(dir, 'cert.pem'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const file = `${c.edge.routesDir}/${dc.file}`;
  if ((await c.host.files.read(file)) !== dc.content) await c.host.files.write(file, dc.content);
}

export const edgeStep: StepOf<ProvisionCtx> = {
  name: 'edge',
  async done(c) {
    const image = edgeImageOf(c);
    const info = await c.host.docker.getContainer(EDGE_CONTAINER).inspect().catch(() => undefined);
    if (!info || info.Config.Image !== image || !info.State.Running || !(await edgeAnswers(c))) return undefined;
    c.report.edge = { container: EDGE_CONTAINER, image, web: c.edge.webAddress, api: REMOTE_EDGE.api };
    c.report.versions.traefik = c.edge.version;
    return `${EDGE_CONTAINER} (${image}) serving on ${c.edge.webAddress}, API ${REMOTE_EDGE.api}`;
  },
  async apply(c) {
    const image = edgeImageOf(c);
    await must(c.host, cmd.mkdir(c.edge.routesDir));
    await must(c.host, cmd.mkdir(EDGE_DIR));
    await ensureDefaultCertificate(c);
    if (!(await imageId(c.host.docker, image))) {
      c.progress(`building ${image} there from this machine's Traefik ${c.edge.version} on ${c.cfg.images.busybox}`);
      const stream = await c.host.docker.buildImage(edgeContext(c), { t: image, rm: true, forcerm: true, pull: false, labels: { [LABEL.managedBy]: MANAGED_BY } } as Docker.ImageBuildOptions);
      await drainProgress(stream, `building ${image} on host ${c.host.name}`);
      c.report.changes.push(`built ${image}`);
    }
    const old = c.host.docker.getContainer(EDGE_CONTAINER);
    if (await old.inspect().then(() => true, () => false)) await old.remove({ force: true });
    const made = await c.host.docker.createContainer(edgeContainer(image, c.edge));
    await made.start();
    await waitFor(`host ${c.host.name}: the edge's API at ${REMOTE_EDGE.api}/ping`, () => edgeAnswers(c), 30_000).catch(async (e: Error) => {
      const logs = demux(await made.logs({ stdout: true, stderr: true, tail: 10 }) as unknown as Buffer).trim();
      throw new Error(`${e.message}; its log: ${logs.split('\n').slice(-5).join(' | ') || '(empty)'}`);
    });
    c.report.edge = { container: EDGE_CONTAINER, image, web: c.edge.webAddress, api: REMOTE_EDGE.api };
    c.report.versions.traefik = c.edge.version;
    c.report.changes.push(`started ${EDGE_CONTAINER} (${image})`);
    return `started ${EDGE_CONTAINER} (${image}) on ${c.edge.webAddress}, API ${REMOTE_EDGE.api}`;
  },
};
