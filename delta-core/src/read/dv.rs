//! Deletion vectors: descriptors, Z85, the RoaringBitmapArray format and the on-disk DV file.
//!
//! A descriptor (`add.deletionVector`) stores its bitmap in one of three ways:
//! * `i` — inline: `pathOrInlineDv` is the Z85-encoded bitmap;
//! * `u` — relative: `pathOrInlineDv` is an optional random prefix followed by the Z85-encoded
//!   UUID (20 characters) of `<prefix>/deletion_vector_<uuid>.bin` under the table root;
//! * `p` — an absolute path (URL) of the DV file.
//!
//! DV files start with a version byte; each DV at `offset` is `size: i32 BE`, the bitmap bytes,
//! then `crc32: i32 BE` of the bitmap. The bitmap is a RoaringBitmapArray: magic `1681511377`
//! (i32 LE), the number of 32-bit bitmaps (i64 LE), then per bitmap its key (i32 LE, the high 32
//! bits of the row index) and a portable 32-bit Roaring bitmap. Sizes and cardinality are checked
//! against the descriptor (and the file's `numRecords`) before anything is allocated.

use std::io::Cursor;

use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::storage::{ResolvedPath, TableLocation};
use crate::table::protocol::DeletionVectorDescriptor;
use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::Int64Type;
use object_store::ObjectStoreExt;

const Z85_ALPHABET: &[u8; 85] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const MAGIC: i32 = 1681511377;
/// Largest serialized bitmap accepted (a DV is bounded by the rows of one file).
pub const MAX_DV_BYTES: i32 = 1 << 30;

fn z85_index(c: u8) -> Option<u32> {
    Z85_ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// Decodes Z85 text (length a multiple of 5). Arithmetic wraps at 32 bits as delta-spark's
/// decoder does, so a final `#`-padded block decodes as delta-spark reads it.
pub fn z85_decode(s: &str) -> DeltaResult<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(DeltaError::dv(format!("Z85 text length {} is not a multiple of 5", bytes.len())));
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for block in bytes.chunks(5) {
        // A block that starts with `#` cannot be valid Z85 (it exceeds 2^32); some writers use
        // leading `#`s to pad a short final block: `##093` carries the last two bytes of 93.
        let pad = block.iter().take_while(|c| **c == b'#').count();
        if pad > 0 && pad < 4 {
            let mut v: u64 = 0;
            for c in &block[pad..] {
                let d = z85_index(*c).ok_or_else(|| DeltaError::dv(format!("invalid Z85 character {:?}", *c as char)))?;
                v = v * 85 + d as u64;
            }
            out.extend_from_slice(&(v as u32).to_be_bytes()[pad..]);
            continue;
        }
        let mut v: u64 = 0;
        for c in block {
            let d = z85_index(*c).ok_or_else(|| DeltaError::dv(format!("invalid Z85 character {:?}", *c as char)))?;
            v = v * 85 + d as u64;
        }
        out.extend_from_slice(&(v as u32).to_be_bytes());
    }
    Ok(out)
}

/// Encodes bytes as Z85, zero-padding to a multiple of 4.
pub fn z85_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(4) * 5);
    for chunk in data.chunks(4) {
        let mut block = [0u8; 4];
        block[..chunk.len()].copy_from_slice(chunk);
        let mut v = u32::from_be_bytes(block) as u64;
        let mut chars = [0u8; 5];
        for c in chars.iter_mut().rev() {
            *c = Z85_ALPHABET[(v % 85) as usize];
            v /= 85;
        }
        out.extend(chars.iter().map(|c| *c as char));
    }
    out
}

/// Formats 16 bytes as a hyphenated lowercase UUID.
fn uuid_string(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Parses a serialized RoaringBitmapArray.
pub fn parse_bitmap_array(data: &[u8]) -> DeltaResult<RoaringTreemap> {
    if data.len() < 12 {
        return Err(DeltaError::dv("bitmap shorter than its header"));
    }
    let magic = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    if magic != MAGIC {
        return Err(DeltaError::dv(format!("bad bitmap magic {magic}")));
    }
    let mut count_bytes = [0u8; 8];
    count_bytes.copy_from_slice(&data[4..12]);
    let count = i64::from_le_bytes(count_bytes);
    // Every bitmap needs at least 4 (key) + 8 bytes; refuse counts the data cannot hold.
    if count < 0 || count as u64 > (data.len() as u64) / 12 {
        return Err(DeltaError::dv(format!("bitmap count {count} does not fit in {} bytes", data.len())));
    }
    let mut cursor = Cursor::new(&data[12..]);
    let mut bitmaps: Vec<(u32, RoaringBitmap)> = Vec::with_capacity(count as usize);
    let mut last_key: Option<u32> = None;
    for _ in 0..count {
        let pos = cursor.position() as usize;
        let rest = &data[12 + pos..];
        if rest.len() < 4 {
            return Err(DeltaError::dv("truncated bitmap key"));
        }
        let key = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if key < 0 || last_key.is_some_and(|k| key as u32 <= k) {
            return Err(DeltaError::dv(format!("bitmap keys must be ascending and non-negative, got {key}")));
        }
        cursor.set_position((pos + 4) as u64);
        let bitmap = RoaringBitmap::deserialize_from(&mut cursor).map_err(|e| DeltaError::dv(format!("bad roaring bitmap: {e}")))?;
        last_key = Some(key as u32);
        bitmaps.push((key as u32, bitmap));
    }
    Ok(RoaringTreemap::from_bitmaps(bitmaps))
}

/// Serializes a treemap as a RoaringBitmapArray.
pub fn serialize_bitmap_array(map: &RoaringTreemap) -> DeltaResult<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let bitmaps: Vec<(u32, &RoaringBitmap)> = map.bitmaps().collect();
    out.extend_from_slice(&(bitmaps.len() as i64).to_le_bytes());
    for (key, bitmap) in bitmaps {
        out.extend_from_slice(&(key as i32).to_le_bytes());
        bitmap.serialize_into(&mut out).map_err(DeltaError::dv)?;
    }
    Ok(out)
}

/// Where the DV's bytes live.
/// Collects the deletion vectors of one commit and writes them into one
/// `deletion_vector_<uuid>.bin` file, as delta-spark does: a format version byte (1), then per
/// vector its big-endian size, the serialised bitmap array and its big-endian CRC-32.
pub struct DvFileWriter {
    uuid: uuid::Uuid,
    buf: Vec<u8>,
}

impl Default for DvFileWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl DvFileWriter {
    pub fn new() -> Self {
        DvFileWriter { uuid: uuid::Uuid::new_v4(), buf: vec![1u8] }
    }

    /// Appends a vector and returns its descriptor (storage type `u`, relative to the table root).
    pub fn add(&mut self, deleted: &RoaringTreemap) -> DeltaResult<DeletionVectorDescriptor> {
        let body = serialize_bitmap_array(deleted)?;
        let size = i32::try_from(body.len()).ok().filter(|s| *s <= MAX_DV_BYTES).ok_or_else(|| DeltaError::LimitExceeded {
            what: "deletion vector bytes",
            limit: MAX_DV_BYTES as u64,
            actual: body.len() as u64,
        })?;
        let offset = i32::try_from(self.buf.len()).map_err(|_| DeltaError::LimitExceeded {
            what: "deletion vector file bytes",
            limit: i32::MAX as u64,
            actual: self.buf.len() as u64,
        })?;
        self.buf.extend_from_slice(&size.to_be_bytes());
        self.buf.extend_from_slice(&body);
        self.buf.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        Ok(DeletionVectorDescriptor {
            storage_type: "u".into(),
            path_or_inline_dv: z85_encode(self.uuid.as_bytes()),
            offset: Some(offset),
            size_in_bytes: size,
            cardinality: deleted.len() as i64,
        })
    }

    /// Writes the file (nothing when no vector was added). Must complete before the commit that
    /// references it.
    pub async fn finish(self, table: &TableLocation) -> DeltaResult<()> {
        if self.buf.len() <= 1 {
            return Ok(());
        }
        let rel = format!("deletion_vector_{}.bin", self.uuid.hyphenated());
        let path = table.resolve(PathKind::DeletionVector, &rel)?;
        table.put(&path.store_path, self.buf).await
    }
}

pub enum DvLocation {
    Inline(Vec<u8>),
    File { path: ResolvedPath, offset: u64 },
}

impl DeletionVectorDescriptor {
    /// Checks the descriptor's sizes, before any allocation or I/O.
    pub fn validate(&self, num_records: Option<u64>) -> DeltaResult<()> {
        if self.size_in_bytes < 0 || self.size_in_bytes > MAX_DV_BYTES {
            return Err(DeltaError::dv(format!("sizeInBytes {} out of range", self.size_in_bytes)));
        }
        if self.cardinality < 0 {
            return Err(DeltaError::dv(format!("negative cardinality {}", self.cardinality)));
        }
        if let Some(n) = num_records {
            if self.cardinality as u64 > n {
                return Err(DeltaError::LimitExceeded { what: "deletion vector cardinality", limit: n, actual: self.cardinality as u64 });
            }
        }
        if self.offset.is_some_and(|o| o < 0) {
            return Err(DeltaError::dv("negative offset"));
        }
        Ok(())
    }

    /// Where the bitmap is stored.
    pub fn location(&self, table: &TableLocation) -> DeltaResult<DvLocation> {
        match self.storage_type.as_str() {
            "i" => {
                let mut bytes = z85_decode(&self.path_or_inline_dv)?;
                let size = self.size_in_bytes as usize;
                if size > bytes.len() {
                    return Err(DeltaError::dv(format!("inline DV holds {} bytes, descriptor says {size}", bytes.len())));
                }
                bytes.truncate(size);
                Ok(DvLocation::Inline(bytes))
            }
            "u" => {
                let s = &self.path_or_inline_dv;
                if s.len() < 20 || !s.is_char_boundary(s.len() - 20) {
                    return Err(DeltaError::dv(format!("relative DV id `{s}` is shorter than a Z85 UUID")));
                }
                let (prefix, encoded) = s.split_at(s.len() - 20);
                let uuid = z85_decode(encoded)?;
                if uuid.len() != 16 {
                    return Err(DeltaError::dv(format!("relative DV id `{s}` does not encode a 16-byte UUID")));
                }
                let name = format!("deletion_vector_{}.bin", uuid_string(&uuid));
                let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                let path = table.resolve(PathKind::DeletionVector, &rel)?;
                Ok(DvLocation::File { path, offset: self.offset.unwrap_or(1) as u64 })
            }
            "p" => {
                let path = table.resolve(PathKind::DeletionVector, &self.path_or_inline_dv)?;
                Ok(DvLocation::File { path, offset: self.offset.unwrap_or(1) as u64 })
            }
            other => Err(DeltaError::dv(format!("unknown storageType `{other}`"))),
        }
    }

    /// Loads the deleted row indexes, validating size, checksum and cardinality.
    pub async fn load(&self, table: &TableLocation, num_records: Option<u64>) -> DeltaResult<RoaringTreemap> {
        self.validate(num_records)?;
        let bitmap_bytes = match self.location(table)? {
            DvLocation::Inline(bytes) => bytes,
            DvLocation::File { path, offset } => {
                let size = self.size_in_bytes as u64;
                let range = offset..offset + 4 + size + 4;
                let data = match table.store().get_range(&path.store_path, range).await {
                    Ok(d) => d,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(DeltaError::DeletionVectorNotFound { path: path.url.to_string() })
                    }
                    Err(e) => return Err(e.into()),
                };
                if data.len() as u64 != 8 + size {
                    return Err(DeltaError::dv(format!("DV file {} is truncated", path.url)));
                }
                let declared = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                if declared != self.size_in_bytes {
                    return Err(DeltaError::dv(format!("DV size {declared} in file differs from descriptor {}", self.size_in_bytes)));
                }
                let body = &data[4..4 + size as usize];
                let tail = &data[4 + size as usize..];
                let crc = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
                if crc != crc32fast::hash(body) {
                    return Err(DeltaError::dv(format!("DV checksum mismatch in {}", path.url)));
                }
                body.to_vec()
            }
        };
        let map = parse_bitmap_array(&bitmap_bytes)?;
        if map.len() != self.cardinality as u64 {
            return Err(DeltaError::dv(format!("bitmap holds {} rows, descriptor says {}", map.len(), self.cardinality)));
        }
        Ok(map)
    }
}

/// The deletion vector descriptor of row `row` of an `add.deletionVector` column.
pub fn dv_at(dv: &StructArray, row: usize) -> Option<DeletionVectorDescriptor> {
    if dv.is_null(row) {
        return None;
    }
    let s = |name: &str| {
        dv.column_by_name(name).and_then(|c| c.as_string_opt::<i32>().filter(|a| a.is_valid(row)).map(|a| a.value(row).to_string()))
    };
    let i32v = |name: &str| {
        dv.column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>().filter(|a| a.is_valid(row)).map(|a| a.value(row)))
    };
    let i64v = |name: &str| {
        dv.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>().filter(|a| a.is_valid(row)).map(|a| a.value(row)))
    };
    Some(DeletionVectorDescriptor {
        storage_type: s("storageType")?,
        path_or_inline_dv: s("pathOrInlineDv")?,
        offset: i32v("offset"),
        size_in_bytes: i32v("sizeInBytes").unwrap_or(0),
        cardinality: i64v("cardinality").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z85_round_trips() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(z85_decode(&z85_encode(&data)).unwrap(), data);
        assert!(z85_decode("abc").is_err());
        assert!(z85_decode("abc\"d").is_err());
    }

    #[test]
    fn bitmap_array_round_trips() {
        let mut m = RoaringTreemap::new();
        for v in [0u64, 5, 1 << 33, (1 << 33) + 7] {
            m.insert(v);
        }
        let bytes = serialize_bitmap_array(&m).unwrap();
        assert_eq!(parse_bitmap_array(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            let _ = parse_bitmap_array(&bytes[..cut]);
        }
    }

    #[test]
    fn inline_dv_from_delta_spark_decodes() {
        let d = DeletionVectorDescriptor {
            storage_type: "i".into(),
            path_or_inline_dv: "^Bg9^0rr910000000000iXQKl0rr91000315c8Xg000f5".into(),
            offset: None,
            size_in_bytes: 36,
            cardinality: 2,
        };
        let loc = TableLocation::open("file:///t", Default::default()).unwrap();
        let DvLocation::Inline(bytes) = d.location(&loc).unwrap() else { panic!() };
        assert_eq!(parse_bitmap_array(&bytes).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn written_vectors_load_back() {
        let dir = std::env::temp_dir().join(format!("dvw-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let loc = TableLocation::open(dir.to_str().unwrap(), Default::default()).unwrap();
        let mut w = DvFileWriter::new();
        let a: RoaringTreemap = [0u64, 3, 9].into_iter().collect();
        let b: RoaringTreemap = (100u64..5000).collect();
        let da = w.add(&a).unwrap();
        let db = w.add(&b).unwrap();
        w.finish(&loc).await.unwrap();
        assert_eq!(da.load(&loc, Some(10)).await.unwrap(), a);
        assert_eq!(db.load(&loc, Some(5000)).await.unwrap(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cardinality_is_checked_against_num_records() {
        let d = DeletionVectorDescriptor {
            storage_type: "i".into(),
            path_or_inline_dv: String::new(),
            offset: None,
            size_in_bytes: 10,
            cardinality: 1000,
        };
        assert!(d.validate(Some(10)).is_err());
    }
}
