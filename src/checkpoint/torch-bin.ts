import { CheckpointError } from '../errors.js';
import { PyDict, TorchTensor, describe, unpickle } from './pickle.js';
import { DTYPE_BYTES, type TensorIndex } from './tensor-info.js';
import { ZIP_STORED, ZipArchive, type ZipEntry } from './zip.js';

/**
 * Reads the tensor index of a `pytorch_model.bin` written by `torch.save(state_dict)` in the
 * PyTorch ≥ 1.6 ZIP format, without executing anything:
 *
 *   <prefix>/data.pkl     pickle of an OrderedDict name → _rebuild_tensor_v2(storage, ...)
 *   <prefix>/data/<key>   one STORED (uncompressed) record per storage, raw little-endian elements
 *   <prefix>/byteorder    (torch ≥ 2.1) "little" or "big"
 *
 * Each tensor maps to a byte range inside its storage record, so, exactly as with safetensors,
 * ONNX external data can point straight into the .bin and no weight is copied.
 */

/** data.pkl of the 1.8 GB BLIP checkpoints is ~100 KB; anything near this limit is not a state dict. */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

export interface TorchBinFile {
  /** Absolute path of the .bin file. */
  path: string;
  tensors: TensorIndex;
}

export async function readTorchBin(path: string): Promise<TorchBinFile> {
  const zip = await ZipArchive.open(path);
  try {
    return await readIndex(zip);
  } finally {
    await zip.close();
  }
}

function findPickle(zip: ZipArchive): { prefix: string; entry: ZipEntry } {
  const found: ZipEntry[] = [];
  for (const entry of zip.entries.values()) {
    if (/^[^/]+\/data\.pkl$/.test(entry.name)) found.push(entry);
  }
  if (found.length === 0) {
    throw new CheckpointError(zip.path, 'ZIP archive has no "<name>/data.pkl" record; not a checkpoint saved by torch.save');
  }
  if (found.length > 1) {
    throw new CheckpointError(zip.path, `ZIP archive has several data.pkl records (${found.map((e) => e.name).join(', ')}); cannot tell which is the checkpoint`);
  }
  const entry = found[0];
  return { prefix: entry.name.slice(0, entry.name.length - 'data.pkl'.length), entry };
}

async function readIndex(zip: ZipArchive): Promise<TorchBinFile> {
  const file = zip.path;
  const { prefix, entry: pklEntry } = findPickle(zip);

  const byteorder = zip.entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = (await zip.readEntry(byteorder, 16)).toString('latin1').trim();
    if (order !== 'little') {
      throw new CheckpointError(file, `storages are ${JSON.stringify(order)}-endian; only little-endian checkpoints are supported`);
    }
  }

  if (pklEntry.method !== ZIP_STORED && pklEntry.method !== 8) {
    throw new CheckpointError(file, `${JSON.stringify(pklEntry.name)} uses compression method ${pklEntry.method}; only stored or deflate records can be read`);
  }
  const pkl = await zip.readEntry(pklEntry, MAX_PICKLE_BYTES);
  const root = unpickle(pkl, { file, record: pklEntry.name });
  if (!(root instanceof PyDict)) {
    throw new CheckpointError(file, `${JSON.stringify(pklEntry.name)} holds ${describe(root)}, not a state dict (a dict of tensors)`);
  }

  const tensors: TensorIndex = new Map();
  for (const [key, value] of root.items) {
    if (typeof key !== 'string') {
      throw new CheckpointError(file, `state dict key ${describe(key)} is not a string`);
    }
    if (!(value instanceof TorchTensor)) {
      throw new CheckpointError(file, `state dict entry ${JSON.stringify(key)} is ${describe(value)}, not a tensor; only flat tensor state dicts are supported`);
    }
    const { storage } = value;
    const where = `tensor ${JSON.stringify(key)}`;
    const recordName = `${prefix}data/${storage.key}`;
    const record = zip.entries.get(recordName);
    if (!record) throw new CheckpointError(file, `${where}: its storage record ${JSON.stringify(recordName)} is missing from the archive`);
    if (record.method !== ZIP_STORED) {
      throw new CheckpointError(
        file,
        `${where}: storage record ${JSON.stringify(recordName)} is compressed (method ${record.method}); tensor data must be stored uncompressed, as torch.save writes it`,
      );
    }

    const elem = DTYPE_BYTES[storage.dtype];
    const storageBytes = storage.numel * elem;
    if (!Number.isSafeInteger(storageBytes) || storageBytes > record.uncompressedSize) {
      throw new CheckpointError(
        file,
        `${where}: storage ${JSON.stringify(storage.key)} claims ${storage.numel} ${storage.dtype} elements but its record holds only ${record.uncompressedSize} bytes`,
      );
    }

    let numel = 1;
    for (const d of value.size) {
      numel *= d;
      if (!Number.isSafeInteger(numel * elem)) throw new CheckpointError(file, `${where}: size ${JSON.stringify(value.size)} is too large`);
    }
    // Contiguous C order: stride[i] = product(size[i+1:]); size-1 dimensions may have any stride,
    // and an empty tensor is contiguous whatever its strides (as torch's is_contiguous() says).
    if (numel > 0) {
      let expected = 1;
      for (let i = value.size.length - 1; i >= 0; i--) {
        if (value.size[i] !== 1 && value.stride[i] !== expected) {
          throw new CheckpointError(
            file,
            `${where} is not contiguous (size ${JSON.stringify(value.size)}, stride ${JSON.stringify(value.stride)}); ` +
            'only contiguous row-major tensors are supported: save tensor.contiguous() or convert the checkpoint to safetensors',
          );
        }
        expected *= value.size[i];
      }
    }

    if (numel > 0 && value.storageOffset + numel > storage.numel) {
      throw new CheckpointError(
        file,
        `${where}: elements [${value.storageOffset}, ${value.storageOffset + numel}) run past its storage ${JSON.stringify(storage.key)} of ${storage.numel} elements`,
      );
    }
    tensors.set(key, {
      name: key,
      dtype: storage.dtype,
      shape: [...value.size],
      file,
      offset: record.dataOffset + (numel > 0 ? value.storageOffset * elem : 0),
      length: numel * elem,
    });
  }
  return { path: file, tensors };
}
