import type { SharedStateLog } from './index.ts';
import { createMemorySharedState, type SharedState } from './state.ts';

/** PLACEHOLDER until the cluster implementation lands. */
export function isClusterWorker(): boolean {
  return false;
}

export function createClusterSharedState(_log: SharedStateLog): SharedState {
  return createMemorySharedState();
}
