/** Verify: the one checksum over (tag, digest) pairs and referrers, both sides compared, every difference named; never writes. */
export { CHECKSUM_KINDS, tagChecksum, type ChecksumKind } from './checksum.js';
export { verifyRepository, type VerifyOptions, type VerifyReport } from './verify.js';
