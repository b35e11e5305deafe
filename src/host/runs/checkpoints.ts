// The checkpoint scan lives in src/shared so `steelscope follow` (on an SSH host) and the host's
// local tailing list checkpoints the same way.
export { sameCheckpoints, scanCheckpoints, type EvalLossCache } from '../../shared/node/checkpoints';
