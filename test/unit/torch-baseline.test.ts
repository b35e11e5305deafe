// The bench's PyTorch baseline (bench/torch-baseline.ts) is refused where it would flatter us:
// a reference BLAS, threads that are not pinned, OpenBLAS's pthread build beside torch's threads,
// or PyTorch at 2 threads slower than at 1. Timings decide nothing here: the inputs are fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  describeBlas,
  describeThreads,
  probeTorch,
  slowerThanOneThread,
  unfairReason,
  type TorchEnv,
} from '../../bench/torch-baseline';

const openblas = (threads: number, parallel = 'openmp'): TorchEnv => ({
  python: '/usr/bin/python3',
  torch: '1.13.0a0',
  blas_path: '/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3',
  blas_kind: 'openblas',
  openblas: { config: 'OpenBLAS 0.3.21 USE_OPENMP', parallel, threads },
  alternative: {
    name: 'libblas.so.3-x86_64-linux-gnu',
    value: '/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3',
  },
  torch_threads: threads,
  interop_threads: 1,
  aten_backend: 'OpenMP',
  env: { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
});

test('OpenBLAS (OpenMP) with every pool pinned is a baseline, and the BLAS line says what runs', () => {
  assert.equal(unfairReason(openblas(1), 1), '');
  assert.equal(unfairReason(openblas(2), 2), '');
  assert.match(
    describeBlas(openblas(1)),
    /^pytorch 1\.13\.0a0 \(\/usr\/bin\/python3\): BLAS OpenBLAS .*\(openmp threading\) at .*openblas-openmp\/libblas\.so\.3; libblas\.so\.3-x86_64-linux-gnu → /,
  );
  assert.match(
    describeThreads(openblas(2)),
    /torch threads 2 .*OpenBLAS 2\), OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2/,
  );
});

test('a reference BLAS, unpinned threads or pthread OpenBLAS at 2 threads give no ratio, saying why', () => {
  const reference = {
    ...openblas(1),
    blas_kind: 'reference',
    openblas: null,
    blas_path: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0',
  };
  assert.match(
    unfairReason(reference, 1),
    /reference \(netlib\) BLAS .*blas\/libblas\.so\.3\.11\.0.*install-bench\.sh/,
  );
  assert.match(
    unfairReason({ ...openblas(2), torch_threads: 1 }, 2),
    /threads not pinned to 2 \(torch 1, OpenBLAS 2\)/,
  );
  assert.match(unfairReason(openblas(2, 'pthread'), 2), /pthread build .* oversubscribes/);
  assert.equal(unfairReason(openblas(1, 'pthread'), 1), '');
});

test('PyTorch at 2 threads slower than at 1 is refused; faster is kept', () => {
  assert.match(slowerThanOneThread(2, 3670, 7933), /at 2 threads \(3670 tok\/s\) was slower than at 1 \(7933 tok\/s\)/);
  assert.equal(slowerThanOneThread(2, 9000, 7933), '');
  assert.equal(slowerThanOneThread(1, 100, undefined), '');
});

const debianTorch = existsSync('/usr/bin/python3') && probeTorch('/usr/bin/python3', 1);
test(
  'the probe reads the BLAS PyTorch really loaded, with its threads pinned',
  { skip: debianTorch && 'env' in debianTorch ? undefined : 'no torch for /usr/bin/python3' },
  () => {
    const probe = probeTorch('/usr/bin/python3', 2);
    assert.ok('env' in probe, JSON.stringify(probe));
    assert.equal(probe.env.torch_threads, 2);
    assert.equal(probe.env.env.OMP_NUM_THREADS, '2');
    assert.ok(probe.env.blas_path, 'a BLAS library is mapped after a product');
  },
);
