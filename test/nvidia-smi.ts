// A fixture shared by the system.jsonl tests.
// What `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,
// temperature.gpu --format=csv,noheader,nounits` prints (", " between cells, no quotes, MiB, W, °C):
// an H100 under load, an A100 in MIG mode (no utilization, power "[N/A]"), a card without power
// readings ("[Not Supported]"), then a name with a comma in it.
export const NVIDIA_SMI_OUTPUT = [
  '0, NVIDIA H100 80GB HBM3, 100, 79071, 81559, 698.53, 72',
  '1, NVIDIA A100-SXM4-80GB, [N/A], 4, 81920, [N/A], 34',
  '2, Tesla T4, 0, 0, 15360, [Not Supported], 38',
  '3, NVIDIA RTX 6000 Ada Generation, Rev 2, 17, 1024, 49140, 35.20, 41',
  '',
].join('\n');
