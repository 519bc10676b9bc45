// Little-endian byte writer/reader for the sketches' binary forms. Varints are LEB128 over
// non-negative integers up to 2^53 (arithmetic, not 32-bit bit operations).
import { ProtocolError } from '../errors.ts';

const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private at = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(extra: number): void {
    if (this.at + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + extra));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.at++] = value & 0xff;
  }

  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
    this.ensure(8);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.at++] = v;
  }

  f64(value: number): void {
    this.ensure(8);
    this.view.setFloat64(this.at, value, true);
    this.at += 8;
  }

  i32(value: number): void {
    this.ensure(4);
    this.view.setInt32(this.at, value, true);
    this.at += 4;
  }

  f32(value: number): void {
    this.ensure(4);
    this.view.setFloat32(this.at, value, true);
    this.at += 4;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.at);
  }
}

export class ByteReader {
  private readonly view: DataView;
  private at = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new ProtocolError(`${this.what}: truncated at byte ${this.at}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++] as number;
  }

  varint(): number {
    // Fast path: one byte (weights below 128, the common case in small slices).
    if (this.at < this.buf.length) {
      const b0 = this.buf[this.at] as number;
      if (b0 < 0x80) {
        this.at++;
        return b0;
      }
    }
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
    throw new ProtocolError(`${this.what}: varint longer than 8 bytes at byte ${this.at}`);
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.at, true);
    this.at += 4;
    return v;
  }

  f32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.at, true);
    this.at += 4;
    return v;
  }

  /** n little-endian float64s in one copy (the platform is little-endian: x86-64, arm64). */
  f64Array(n: number): Float64Array {
    this.need(n * 8);
    if (!LITTLE_ENDIAN) return this.f64Slow(n);
    // Copy into a fresh, aligned buffer (a Node Buffer's subarray/slice is a view into a shared pool).
    const copy = new Uint8Array(n * 8);
    copy.set(this.buf.subarray(this.at, this.at + n * 8));
    this.at += n * 8;
    return new Float64Array(copy.buffer);
  }

  private f64Slow(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.f64();
    return out;
  }

  get remaining(): number {
    return this.buf.length - this.at;
  }

  end(): void {
    if (this.remaining !== 0) throw new ProtocolError(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}
