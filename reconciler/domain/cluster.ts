// The cluster config (mlink.yaml) as agents' writes see it: an invalid one blocks writes
// until a human fixes it.
import type { ClusterConfig } from '../../schemas/index.js';
import { LayoutError, readClusterConfig } from '../layout.js';
import type { TreeView } from '../state/tree.js';
import { conflict } from './errors.js';

export async function clusterConfig(view: TreeView): Promise<ClusterConfig> {
  try {
    return await readClusterConfig(view);
  } catch (err) {
    if (err instanceof LayoutError) throw conflict(`${err.message} (fix mlink.yaml before agents can write)`);
    throw err;
  }
}
