// The cluster config (mlink.yaml) at a given tree, parsed once per blob.
import { parse } from 'yaml';
import { SchemaError, validateClusterConfig, type ClusterConfig } from '../../schemas/index.js';
import type { TreeView } from '../state/tree.js';
import { conflict } from './errors.js';

const cache = new Map<string, ClusterConfig>();

export async function clusterConfig(view: TreeView): Promise<ClusterConfig> {
  const oid = await view.blobOid('mlink.yaml');
  if (!oid) throw conflict('mlink.yaml is missing from the state repo; run `mlink init` or restore it with git revert');
  const hit = cache.get(oid);
  if (hit) return hit;
  try {
    const config = validateClusterConfig('mlink.yaml', parse((await view.readText('mlink.yaml')) ?? ''));
    if (cache.size > 64) cache.clear();
    cache.set(oid, config);
    return config;
  } catch (err) {
    if (err instanceof SchemaError) throw conflict(`${err.message} (fix mlink.yaml before agents can write)`);
    throw err;
  }
}
