// Traefik routes by Host header to a container from a file-provider route file, and
// stops as soon as the file is gone.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cfg, docker, eventually, removeTestContainers, runId, testLabel, viaTraefik } from '../support/infra.js';

const routeFile = join(cfg.traefik.routesDir, `test-${runId}.yaml`);
afterAll(async () => {
  rmSync(routeFile, { force: true });
  await removeTestContainers();
});

describe('traefik', () => {
  it('reaches a container by Host header and stops when its route file is removed', async () => {
    const page = `hello from ${runId}`;
    const c = await docker.createContainer({
      Image: cfg.images.busybox,
      Cmd: ['sh', '-c', `mkdir -p /tmp/www && echo "${page}" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`],
      Labels: { [testLabel]: runId },
      HostConfig: { Runtime: 'runsc' },
    });
    await c.start();
    const ip = (await c.inspect()).NetworkSettings.Networks.bridge?.IPAddress;
    const host = `${runId}.traefik.test`;

    expect((await viaTraefik(host)).status).toBe(404);
    writeFileSync(routeFile, [
      'http:',
      '  routers:',
      `    ${runId}:`,
      `      rule: "Host(\`${host}\`)"`,
      `      service: ${runId}`,
      '      entryPoints: [websecure]', // what viaTraefik reaches (TLS from the entrypoint's defaults)
      '  services:',
      `    ${runId}:`,
      '      loadBalancer:',
      '        servers:',
      `          - url: "http://${ip}:8080"`,
      '',
    ].join('\n'));
    const ok = await eventually('route serves the page', async () => {
      const r = await viaTraefik(host);
      return r.status === 200 ? r : undefined;
    });
    expect(ok.body.trim()).toBe(page);

    rmSync(routeFile);
    await eventually('route is gone', async () => ((await viaTraefik(host)).status === 404 ? true : undefined));
  });
});
