// Run as a separate process by state-store tests: N commits through its own StateStore,
// racing the test process's writers on the same repository.
import { StateStore } from '../../reconciler/state/store.js';

const [repo, prefix, count] = process.argv.slice(2);
const store = StateStore.open(repo!);
for (let i = 0; i < Number(count); i++) {
  await store.commit({
    ref: 'refs/heads/main',
    author: { name: prefix!, email: `${prefix}@example.com` },
    message: `${prefix} change ${i}`,
    prepare: async () => [{ path: `notes/${prefix}/${i}.txt`, content: `${i}\n` }],
  });
}
