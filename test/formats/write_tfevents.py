#!/usr/bin/python3
"""Writes TensorBoard event files for the tests, independently of steelscope's reader.

The messages are built by python3-protobuf from TensorBoard's field numbers (event.proto,
summary.proto, tensor.proto), described here as a FileDescriptorProto; the records are framed as
TFRecord with python3-crcmod's CRC-32C. Debian has no tensorboard package.

Usage: write_tfevents.py PATH < events.json   (appends; one JSON list of events)
  event: {"wall_time": s, "step": n, "values": [value, ...], "delay": seconds before writing,
          "wait_for": a path that must exist before it is written (a test lets the writer go on)}
  value: {"tag": ..., "simple_value": x}
       | {"tag": ..., "tensor": x, "dtype": "float"|"double", "packed": "content"|"val"}
       | {"tag": ..., "text": "..."}             (plugin "text", a DT_STRING tensor)
  Plugin metadata is written on a tag's first value only, as TF2's summary writers do.
       write_tfevents.py --crc-vector             prints the masked CRC of TensorBoard's test vector
"""
import json
import os
import struct
import sys
import time

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

crc32c = crcmod.predefined.mkCrcFun("crc-32c")

F = descriptor_pb2.FieldDescriptorProto


def message(file, name, fields):
    m = file.message_type.add(name=name)
    for number, fname, ftype, label, type_name in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name


def build_classes():
    file = descriptor_pb2.FileDescriptorProto(name="tb_subset.proto", package="tb", syntax="proto3")
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message(file, "TensorProto", [
        (1, "dtype", F.TYPE_INT32, opt, None),
        (4, "tensor_content", F.TYPE_BYTES, opt, None),
        (5, "float_val", F.TYPE_FLOAT, rep, None),
        (6, "double_val", F.TYPE_DOUBLE, rep, None),
        (8, "string_val", F.TYPE_BYTES, rep, None),
    ])
    message(file, "PluginData", [(1, "plugin_name", F.TYPE_STRING, opt, None), (2, "content", F.TYPE_BYTES, opt, None)])
    message(file, "SummaryMetadata", [(1, "plugin_data", F.TYPE_MESSAGE, opt, ".tb.PluginData")])
    message(file, "Value", [
        (1, "tag", F.TYPE_STRING, opt, None),
        (2, "simple_value", F.TYPE_FLOAT, opt, None),
        (8, "tensor", F.TYPE_MESSAGE, opt, ".tb.TensorProto"),
        (9, "metadata", F.TYPE_MESSAGE, opt, ".tb.SummaryMetadata"),
    ])
    message(file, "Summary", [(1, "value", F.TYPE_MESSAGE, rep, ".tb.Value")])
    message(file, "Event", [
        (1, "wall_time", F.TYPE_DOUBLE, opt, None),
        (2, "step", F.TYPE_INT64, opt, None),
        (3, "file_version", F.TYPE_STRING, opt, None),
        (5, "summary", F.TYPE_MESSAGE, opt, ".tb.Summary"),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    factory = message_factory.MessageFactory(pool)
    return lambda name: factory.GetPrototype(pool.FindMessageTypeByName("tb." + name))


def masked_crc(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


DT_FLOAT, DT_DOUBLE, DT_STRING = 1, 2, 7


def fill_value(v, spec, first):
    v.tag = spec["tag"]
    if "simple_value" in spec:
        v.simple_value = spec["simple_value"]
        return
    plugin = "text" if "text" in spec else "scalars"
    if first:
        v.metadata.plugin_data.plugin_name = plugin
    if plugin == "text":
        v.tensor.dtype = DT_STRING
        v.tensor.string_val.append(spec["text"].encode("utf-8"))
        return
    double = spec.get("dtype", "float") == "double"
    v.tensor.dtype = DT_DOUBLE if double else DT_FLOAT
    if spec.get("packed", "content") == "content":
        v.tensor.tensor_content = struct.pack("<d" if double else "<f", spec["tensor"])
    elif double:
        v.tensor.double_val.append(spec["tensor"])
    else:
        v.tensor.float_val.append(spec["tensor"])


def main():
    if sys.argv[1:] == ["--crc-vector"]:
        print(hex(masked_crc(b"\x1a\x11CRC test, one two")))
        return
    cls = build_classes()
    Event = cls("Event")
    seen = set()
    with open(sys.argv[1], "ab") as out:
        if out.tell() == 0:
            out.write(record(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString()))
        for spec in json.load(sys.stdin):
            if spec.get("delay"):
                time.sleep(spec["delay"])
            while spec.get("wait_for") and not os.path.exists(spec["wait_for"]):
                time.sleep(0.02)
            event = Event(wall_time=spec["wall_time"], step=spec["step"])
            for value in spec.get("values", []):
                fill_value(event.summary.value.add(), value, value["tag"] not in seen)
                seen.add(value["tag"])
            out.write(record(event.SerializeToString()))
            out.flush()


if __name__ == "__main__":
    main()
