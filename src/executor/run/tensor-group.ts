import type { Tensor } from "@tensorflow/tfjs";
import type { Group } from "../comm/group.js";
import { soloGroup, type GroupOps } from "../model/context.js";
import { readNow, tensorFromShared, type Tf } from "../model/ops.js";

/**
 * The model's view of a shared-memory group: tensors in, tensors out. Data leaves TensorFlow.js through
 * readNow (a view of the wasm heap; dataSync elsewhere), is copied once into this rank's slot, the
 * collective runs in place there (Group's *View forms), and the result becomes a new tensor straight from
 * the slot. Row blocks: all-gather stacks every member's rows in member order, reduce-scatter keeps this
 * member's 1/size of the rows.
 */
export function tensorGroup(tf: Tf, group: Group | undefined): GroupOps {
  if (group === undefined || group.size === 1) return soloGroup(tf);
  // each *View form copies its input into the slot before anything else runs, as readNow requires
  const data = (x: Tensor) => readNow(tf, x);
  const rowsShape = (x: Tensor, rows: number) => [rows, ...x.shape.slice(1)];
  return {
    size: group.size,
    rank: group.index,
    allReduce: (x, purpose) => tensorFromShared(tf, group.allReduceView(data(x), purpose), x.shape),
    allReduceMax: (x, purpose) => tensorFromShared(tf, group.allReduceView(data(x), purpose, "max"), x.shape),
    allGather: (x, purpose) => {
      const d = data(x);
      return tensorFromShared(tf, group.allGatherView(d, d.length * group.size, purpose), rowsShape(x, x.shape[0]! * group.size));
    },
    reduceScatter: (x, purpose) => {
      if (x.shape[0]! % group.size !== 0) throw new Error(`internal: reduce-scatter of ${x.shape[0]} rows over ${group.size} ranks`);
      return tensorFromShared(tf, group.reduceScatterView(data(x), purpose), rowsShape(x, x.shape[0]! / group.size));
    },
  };
}
