// A small web app image for tests and benchmarks: busybox httpd serving a page that
// shows the GREETING env value, so a test can see which version answered.
import { must, run } from '../../infra/proc.js';
import { cfg } from './infra.js';

export const WEB_IMAGE = 'mlink-test/web:1';

export async function ensureWebImage(): Promise<string> {
  if ((await run('docker', ['image', 'inspect', WEB_IMAGE])).code === 0) return WEB_IMAGE;
  const dockerfile = [
    `FROM ${cfg.images.busybox}`,
    'CMD ["sh", "-c", "mkdir -p /tmp/www && echo \\"${GREETING:-hello} from $(hostname)\\" > /tmp/www/index.html && exec httpd -f -p ${PORT:-8080} -h /tmp/www"]',
    '',
  ].join('\n');
  await must('sh', ['-c', `DOCKER_BUILDKIT=0 docker build -q -t ${WEB_IMAGE} -`], { input: dockerfile });
  return WEB_IMAGE;
}
