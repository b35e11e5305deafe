// Types of build-kernels.mjs for the tests that import it.
export class KernelBuildError extends Error {}
export function buildSteelKernels(root: string, dist: string, clang?: string): Promise<string>;
