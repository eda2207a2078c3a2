"""A pure NumPy JPEG Lossless encoder, so the self-test can write a JPEG-lossless DICOM
without any encoder package (none of pydicom's encoders writes this syntax)."""

from __future__ import annotations

import numpy as np


def encode_jpeg_lossless(image: np.ndarray) -> bytes:
    """A baseline-free JPEG Lossless (process 14, first-order predictor 1) codestream.

    Pure Python/NumPy, so the self-test can make a JPEG-lossless DICOM without any encoder
    package (none of pydicom's encoders writes this syntax). 8-bit grayscale only.
    """
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError("encode_jpeg_lossless expects a 2-D uint8 image")
    rows, cols = image.shape
    x = image.astype(np.int32)
    pred = np.empty_like(x)
    pred[0, 0] = 128  # 2 ** (precision - 1)
    pred[0, 1:] = x[0, :-1]  # first line: the sample to the left
    pred[1:, 0] = x[:-1, 0]  # first column: the sample above
    pred[1:, 1:] = x[1:, :-1]  # predictor 1 (Ra) everywhere else
    diff = (x - pred).ravel()
    ssss = np.where(diff == 0, 0, np.floor(np.log2(np.abs(diff) + 0.5)).astype(np.int32) + 1)
    extra = np.where(diff >= 0, diff, diff + (1 << ssss) - 1)
    # Huffman table: categories 0..8, each a 4-bit code equal to the category (canonical order).
    acc = 0
    nbits = 0
    out = bytearray()
    for cat, bits in zip(ssss.tolist(), extra.tolist(), strict=True):
        acc = (acc << (4 + cat)) | (cat << cat) | (bits & ((1 << cat) - 1))
        nbits += 4 + cat
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)  # byte stuffing
        acc &= (1 << nbits) - 1
    if nbits:
        byte = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF  # pad with 1 bits
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
    n_symbols = 9
    counts = [0] * 16
    counts[3] = n_symbols  # nine codes of length 4
    sof = bytes([0xFF, 0xC3, 0, 11, 8]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big")
    sof += bytes([1, 1, 0x11, 0])
    dht = bytes([0xFF, 0xC4]) + (3 + 16 + n_symbols).to_bytes(2, "big") + bytes([0x00])
    dht += bytes(counts) + bytes(range(n_symbols))
    sos = bytes([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 0, 0])  # Ss=1 predictor, Se=0, Ah/Al=0
    return b"\xff\xd8" + sof + dht + sos + bytes(out) + b"\xff\xd9"
