/**
 * Operand alignment the tensor-core GEMM kernels need: 16 bytes (cuBLAS documentation, "Tensor Core
 * Usage": best performance with pointers and leading dimensions that are multiples of 16 bytes; NVIDIA's
 * "Matrix Multiplication Background" guide, "Tensor Core Requirements": dimensions that are multiples of
 * 8 fp16 elements).
 */
export const TENSOR_CORE_ALIGNMENT_BYTES = 16;

/** 16-bit elements in that alignment: a 16-bit operand starts aligned when its offset is a multiple of this. */
export const ALIGNED_16BIT_ELEMENTS = TENSOR_CORE_ALIGNMENT_BYTES / 2;

/** Whether a head's slice of the fused QKV output starts on the tensor cores' alignment (16-bit elements). */
export function headDimAligned(headDim: number): boolean {
  return headDim % ALIGNED_16BIT_ELEMENTS === 0;
}
