/**
 * Long tests run in two sizes: by default, small enough to pass with margin on a loaded 2-core machine
 * (the same interleavings with fewer events); with `POSTBOX_SOAK=1`, the deep version for soak runs.
 * Read here, in the tests only: the engine and the service never see this variable.
 */
export const SOAK = process.env.POSTBOX_SOAK === '1';

/** `quick` by default, `deep` under `POSTBOX_SOAK=1`. */
export function soakOr<T>(quick: T, deep: T): T {
  return SOAK ? deep : quick;
}
