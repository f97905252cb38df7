// The private registry stores an image pushed to it and gives it back.
import { afterAll, describe, expect, it } from 'vitest';
import { registryAddress } from '../../infra/config.js';
import { must, run } from '../../infra/proc.js';
import { cfg, runId } from '../support/infra.js';

const repo = `${registryAddress(cfg)}/mlink-test/busybox`;
const ref = `${repo}:${runId}`;

afterAll(async () => {
  await run('docker', ['rmi', '-f', ref]);
});

describe('image registry', () => {
  it('takes a pushed image and serves it back on pull', async () => {
    // Give the image a layer of its own so the pull cannot be satisfied by the base image.
    const built = await must('sh', ['-c', `printf 'FROM ${cfg.images.busybox}\\nRUN echo ${runId} > /marker\\n' | DOCKER_BUILDKIT=0 docker build -q -t ${ref} -`]);
    expect(built.trim()).toMatch(/^sha256:/);
    await must('docker', ['push', ref]);
    const tags = await (await fetch(`http://${registryAddress(cfg)}/v2/mlink-test/busybox/tags/list`)).json() as { tags: string[] };
    expect(tags.tags).toContain(runId);

    await must('docker', ['rmi', ref]);
    expect((await run('docker', ['image', 'inspect', ref])).code).not.toBe(0);
    await must('docker', ['pull', ref]);
    const marker = await must('docker', ['run', '--rm', ref, 'cat', '/marker']);
    expect(marker.trim()).toBe(runId);

    // Leave the registry as we found it.
    const head = await fetch(`http://${registryAddress(cfg)}/v2/mlink-test/busybox/manifests/${runId}`, {
      method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    const digest = head.headers.get('docker-content-digest');
    if (digest) await fetch(`http://${registryAddress(cfg)}/v2/mlink-test/busybox/manifests/${digest}`, { method: 'DELETE' });
  }, 120_000);
});
