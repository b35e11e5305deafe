// TensorBoard event files (events.out.tfevents.*): TFRecord records (./tfrecord.ts), each an Event
// protobuf, decoded with @bufbuild/protobuf's BinaryReader by field number (TensorBoard's
// event.proto, summary.proto, tensor.proto; no generated code: we read a handful of fields).
//
// What becomes what:
// - Summary values with `simple_value` (old-style writers, PyTorch's SummaryWriter) and TF2 scalar
//   tensors (DT_FLOAT/DT_DOUBLE, from tensor_content or float_val/double_val) are metric points;
// - text summaries (string tensors) are samples: the tag as the prompt, the text as the text;
// - other plugins (histograms, images, ...) are left out.
// TF2 writers name a tag's plugin only on its first value, so the decoder remembers it per tag;
// a tag never introduced (a reader resumed past its first value) is read by its tensor's type.
//
// Writers log one event per tag, several at the same step: their points are merged per step
// (./stepMerge.ts).
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { MetricRecord, SampleRecord } from '../run';
import { encodeMetric } from '../run';
import { NO_REPLAY, StepMerger, takesPoint, type Replay } from './stepMerge';
import { decodeTfRecord } from './tfrecord';

const DT_FLOAT = 1;
const DT_DOUBLE = 2;
const DT_STRING = 7;

interface Tensor {
  dtype: number;
  content?: Uint8Array;
  floats: number[];
  doubles: number[];
  strings: Uint8Array[];
}

interface SummaryValue {
  tag: string;
  simpleValue?: number;
  tensor?: Tensor;
  pluginName?: string;
}

export interface TfEvent {
  /** Seconds since the epoch, as the writer's clock said. */
  wallTime: number;
  step: number;
  values: SummaryValue[];
}

/** Reads a length-delimited sub-message's bytes as its own reader. */
function sub(reader: BinaryReader): BinaryReader {
  return new BinaryReader(reader.bytes());
}

/** `repeated float/double` come packed (one length-delimited run) or one per tag: both are read. */
function repeated(reader: BinaryReader, wire: WireType, one: () => number, into: number[]): void {
  if (wire !== WireType.LengthDelimited) {
    into.push(one());
    return;
  }
  const end = reader.uint32() + reader.pos;
  while (reader.pos < end) into.push(one());
}

function readTensor(reader: BinaryReader): Tensor {
  const tensor: Tensor = { dtype: 0, floats: [], doubles: [], strings: [] };
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.Varint) tensor.dtype = reader.int32();
    else if (field === 4 && wire === WireType.LengthDelimited) tensor.content = reader.bytes();
    else if (field === 5) repeated(reader, wire, () => reader.float(), tensor.floats);
    else if (field === 6) repeated(reader, wire, () => reader.double(), tensor.doubles);
    else if (field === 8 && wire === WireType.LengthDelimited) tensor.strings.push(reader.bytes());
    else reader.skip(wire, field);
  }
  return tensor;
}

/** SummaryMetadata.plugin_data.plugin_name, if given. */
function readPluginName(reader: BinaryReader): string | undefined {
  let name: string | undefined;
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      const plugin = sub(reader);
      while (plugin.pos < plugin.len) {
        const [f, w] = plugin.tag();
        if (f === 1 && w === WireType.LengthDelimited) name = plugin.string();
        else plugin.skip(w, f);
      }
    } else reader.skip(wire, field);
  }
  return name;
}

function readValue(reader: BinaryReader): SummaryValue {
  const value: SummaryValue = { tag: '' };
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.LengthDelimited) value.tag = reader.string();
    else if (field === 2 && wire === WireType.Bit32) value.simpleValue = reader.float();
    else if (field === 8 && wire === WireType.LengthDelimited) value.tensor = readTensor(sub(reader));
    else if (field === 9 && wire === WireType.LengthDelimited) value.pluginName = readPluginName(sub(reader));
    else reader.skip(wire, field);
  }
  return value;
}

/** One Event message; throws on bytes that are not one (the caller counts it as malformed). */
export function decodeEvent(data: Uint8Array): TfEvent {
  const reader = new BinaryReader(data);
  const event: TfEvent = { wallTime: NaN, step: 0, values: [] };
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.Bit64) event.wallTime = reader.double();
    else if (field === 2 && wire === WireType.Varint) event.step = Number(reader.int64());
    else if (field === 5 && wire === WireType.LengthDelimited) {
      const summary = sub(reader);
      while (summary.pos < summary.len) {
        const [f, w] = summary.tag();
        if (f === 1 && w === WireType.LengthDelimited) event.values.push(readValue(sub(summary)));
        else summary.skip(w, f);
      }
    } else reader.skip(wire, field);
  }
  return event;
}

/** The one number of a scalar tensor, or undefined when the tensor is not a float/double scalar. */
function tensorScalar(tensor: Tensor): number | undefined {
  const { dtype, content } = tensor;
  if (dtype === DT_FLOAT) {
    if (content && content.length === 4) return new DataView(content.buffer, content.byteOffset, 4).getFloat32(0, true);
    return tensor.floats.length === 1 ? tensor.floats[0] : undefined;
  }
  if (dtype === DT_DOUBLE) {
    if (content && content.length === 8) return new DataView(content.buffer, content.byteOffset, 8).getFloat64(0, true);
    return tensor.doubles.length === 1 ? tensor.doubles[0] : undefined;
  }
  return undefined;
}

const utf8 = new TextDecoder();

/** Series of tags such as eval/loss or val_acc go to the eval table: they are logged at other steps than training's. */
export function kindOfTag(tag: string): 'train' | 'eval' {
  return /^(eval|val|valid|validation|test)([/_.]|$)/i.test(tag) ? 'eval' : 'train';
}

export interface DecodedBatch {
  metrics: MetricRecord[];
  samples: SampleRecord[];
  /** Records skipped: a bad data checksum, or bytes that are not an Event. */
  malformed: number;
  /** Set when a length checksum was wrong: nothing more of this file can be read. */
  stopped: boolean;
}

/**
 * The decoding state of one event file: per-tag plugin names, and the record of the step being
 * logged (merged across events). Feed it the file's framed records in order.
 */
export class EventFileDecoder {
  private readonly plugins: Map<string, string>;
  private readonly merger = new StepMerger();
  stopped = false;

  /** `plugins`: the tags' plugin names already learned from the file (a decoder that starts mid-file). */
  constructor(plugins: ReadonlyMap<string, string> = new Map()) {
    this.plugins = new Map(plugins);
  }

  /** Per tag, the plugin its first value named. */
  get knownPlugins(): ReadonlyMap<string, string> {
    return this.plugins;
  }

  /** Forgets everything (the file was truncated or replaced and is read again from 0). */
  reset(): void {
    this.plugins.clear();
    this.merger.clear();
    this.stopped = false;
  }

  /**
   * Decodes framed records in file order; `end` is each one's file offset just past it. Records
   * read again after a restart (see Replay) hand out only points of the steps still open then.
   */
  decode(records: readonly { bytes: Uint8Array; end: number }[], replay: Replay = NO_REPLAY): DecodedBatch {
    const batch: DecodedBatch = { metrics: [], samples: [], malformed: 0, stopped: false };
    for (const { bytes, end } of records) {
      if (this.stopped) break;
      const repeat = end <= replay.sent;
      const record = decodeTfRecord(bytes);
      if (record.kind === 'bad-length') {
        this.stopped = batch.stopped = true;
        batch.malformed++;
      } else if (record.kind === 'bad-data') batch.malformed += repeat ? 0 : 1;
      else {
        let event: TfEvent;
        try {
          event = decodeEvent(record.data);
        } catch {
          batch.malformed += repeat ? 0 : 1;
          continue;
        }
        this.take(event, batch, { start: end - bytes.length, end }, replay);
      }
    }
    batch.metrics = this.merger.take();
    return batch;
  }

  /** Where a restarted reader must start to rebuild the open steps whole; undefined: where it stands. */
  resumeAt(): number | undefined {
    return this.merger.earliestOpen();
  }

  /** Per kind, the step still open. */
  openSteps(): Record<string, number> {
    return this.merger.openSteps();
  }

  private take(event: TfEvent, batch: DecodedBatch, at: { start: number; end: number }, replay: Replay): void {
    const t = event.wallTime * 1000;
    for (const value of event.values) {
      if (value.pluginName !== undefined && !this.plugins.has(value.tag)) this.plugins.set(value.tag, value.pluginName);
      const plugin = this.plugins.get(value.tag);
      const text = this.textOf(value, plugin);
      if (text !== undefined) {
        if (at.end > replay.sent)
          batch.samples.push({
            step: event.step,
            t,
            prompt: value.tag,
            text,
            temperature: NaN,
            top_k: NaN,
            top_p: NaN,
            seed: NaN,
          });
        continue;
      }
      const point = this.scalarOf(value, plugin);
      if (point === undefined) continue;
      const kind = kindOfTag(value.tag);
      if (takesPoint(replay, at.end, kind, event.step))
        this.merger.add(kind, event.step, t, value.tag, encodeMetric(point), at.start);
    }
  }

  private textOf(value: SummaryValue, plugin: string | undefined): string | undefined {
    const tensor = value.tensor;
    if (!tensor || tensor.dtype !== DT_STRING || (plugin !== undefined && plugin !== 'text')) return undefined;
    return tensor.strings.map((s) => utf8.decode(s)).join('\n');
  }

  private scalarOf(value: SummaryValue, plugin: string | undefined): number | undefined {
    if (value.simpleValue !== undefined) return value.simpleValue;
    if (!value.tensor || (plugin !== undefined && plugin !== 'scalars')) return undefined;
    return tensorScalar(value.tensor);
  }
}
