"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the checksum of both serial protocols
(the DUT's frames, hardware/protocol.md, and the INA226 logger's, hardware/meter/README.md)."""

from __future__ import annotations

import binascii

import numpy as np

# binascii.crc_hqx(bytes([b]), 0) is the MSB-first table entry for byte b
_TABLE = np.array([binascii.crc_hqx(bytes([b]), 0) for b in range(256)], dtype=np.uint16)


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC of ``data``, continuing from ``crc``; crc16(b"123456789") == 0x29B1."""
    return binascii.crc_hqx(data, crc)


def crc16_rows(rows: np.ndarray) -> np.ndarray:
    """CRC of every row of a (k, n) uint8 array, vectorised over rows."""
    crc = np.full(rows.shape[0], 0xFFFF, dtype=np.uint16)
    for j in range(rows.shape[1]):
        crc = (crc << np.uint16(8)) ^ _TABLE[(crc >> np.uint16(8)) ^ rows[:, j]]
    return crc
