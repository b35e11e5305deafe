// The parts of tfjs-backend-wasm's BackendWasm that our kernels use (its typings lean on
// emscripten types we do not install), and small helpers shared by our wasm kernels.
import type { WasmMemory } from './steel';
import type { DataId, DataType, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

export type CFunction = (...args: unknown[]) => void;

export interface WasmTensorData {
  id: number;
  memoryOffset: number;
}

export interface WasmBackend {
  wasm: {
    cwrap(name: string, returnType: null, argTypes: string[]): CFunction;
    tfjs: { disposeData(id: number): void };
    asm?: { memory?: WasmMemory };
    /** The heap as bytes; emscripten replaces it when the heap grows, so read it after allocating. */
    HEAPU8: Uint8Array;
  };
  dataIdMap: { get(dataId: DataId): WasmTensorData | undefined; delete(dataId: DataId): boolean };
  incRef(dataId: DataId): void;
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: DataId): boolean;
}

export function asWasmBackend(backend: unknown): WasmBackend {
  const b = backend as Partial<WasmBackend> | null;
  if (b == null || typeof b.makeOutput !== 'function' || typeof b.typedArrayFromHeap !== 'function' || b.wasm == null) {
    throw new Error('steelscope wasm kernel called with a backend that is not tfjs-backend-wasm');
  }
  return b as WasmBackend;
}

export function tensorData(backend: WasmBackend, info: TensorInfo): WasmTensorData {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error('steelscope wasm kernel: tensor data not found on the wasm backend');
  return data;
}

export interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}

export function input(args: KernelArgs, name: string): TensorInfo {
  const t = args.inputs[name];
  if (t === undefined) throw new Error(`steelscope wasm kernel: missing input "${name}"`);
  return t;
}
