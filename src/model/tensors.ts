export * from '../tensor.js'; // shim: the tensor types moved to src/tensor.ts; removed once every branch imports from there
