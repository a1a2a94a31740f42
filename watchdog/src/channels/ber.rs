//! The small part of ASN.1 BER (X.690) that SNMPv2c traps and informs need:
//! INTEGER, OCTET STRING, OBJECT IDENTIFIER, SEQUENCE, the SNMP application
//! types (Gauge32/Unsigned32, TimeTicks) and context-tagged PDUs,
//! plus a reader for the Response PDU that acknowledges an inform.
//!
//! Hand-rolled on purpose: the Rust SNMP crates are agents or managers that
//! poll (GET/WALK), none sends v2c notifications, and the encoder is ~100
//! lines checked byte for byte below and end to end by net-snmp's snmptrapd.

/// Universal tags.
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OBJECT_IDENTIFIER: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
/// SNMP application tags (RFC 2578 section 7.1).
pub const GAUGE32: u8 = 0x42;
pub const TIMETICKS: u8 = 0x43;
/// SNMP PDU tags (RFC 3416 section 3): context-specific, constructed.
pub const RESPONSE_PDU: u8 = 0xA2;
pub const INFORM_REQUEST_PDU: u8 = 0xA6;
pub const SNMPV2_TRAP_PDU: u8 = 0xA7;

/// A complete TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A signed INTEGER in the fewest octets (two's complement).
pub fn integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    // Drop leading octets that only repeat the sign of the next one.
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(INTEGER, &bytes[start..])
}

/// An unsigned 32-bit application value (Gauge32, TimeTicks):
/// BER integers are signed, so a high bit needs a leading zero octet.
pub fn unsigned(tag: u8, value: u32) -> Vec<u8> {
    let mut content = integer(i64::from(value));
    content[0] = tag;
    content
}

/// An OCTET STRING.
pub fn octet_string(value: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, value)
}

/// An OBJECT IDENTIFIER (at least two arcs; the first two share an octet).
pub fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut content = Vec::new();
    let first = arcs.first().copied().unwrap_or(0) * 40 + arcs.get(1).copied().unwrap_or(0);
    for arc in std::iter::once(first).chain(arcs.iter().skip(2).copied()) {
        let mut chunk = vec![(arc & 0x7F) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7F) as u8);
            rest >>= 7;
        }
        chunk.reverse();
        content.extend(chunk);
    }
    tlv(OBJECT_IDENTIFIER, &content)
}

/// A constructed value (SEQUENCE or a PDU) holding already encoded parts.
pub fn constructed(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A value that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed BER at byte {offset}: {what}")]
pub struct DecodeError {
    /// Where in the packet.
    pub offset: usize,
    /// What was expected.
    pub what: &'static str,
}

/// A reader over BER bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.offset,
            what,
        })
    }

    /// The next TLV: its tag and a reader over its content.
    pub fn read_tlv(&mut self) -> Result<(u8, Reader<'a>), DecodeError> {
        let rest = &self.bytes[self.offset..];
        let (&tag, rest) = match rest.split_first() {
            Some(x) => x,
            None => return self.fail("a tag"),
        };
        let (&first, mut rest) = match rest.split_first() {
            Some(x) => x,
            None => return self.fail("a length"),
        };
        let mut header = 2;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return self.fail("a definite length of at most 4 octets");
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            rest = &rest[n..];
            header += n;
            len
        };
        if rest.len() < len {
            return self.fail("content as long as its length says");
        }
        let content = Reader {
            bytes: &rest[..len],
            offset: 0,
        };
        self.offset += header + len;
        Ok((tag, content))
    }

    /// The next TLV, which must have `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let at = self.offset;
        let (found, content) = self.read_tlv()?;
        if found != tag {
            return Err(DecodeError { offset: at, what });
        }
        Ok(content)
    }

    /// The next INTEGER.
    pub fn integer(&mut self) -> Result<i64, DecodeError> {
        let content = self.expect(INTEGER, "an INTEGER")?;
        let b = content.bytes;
        if b.is_empty() || b.len() > 8 {
            return self.fail("an INTEGER of 1 to 8 octets");
        }
        let sign = if b[0] & 0x80 != 0 { -1i64 } else { 0 };
        Ok(b.iter().fold(sign, |acc, x| (acc << 8) | i64::from(*x)))
    }

    /// The bytes not read yet.
    #[cfg(test)]
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.offset..]
    }

    /// The next OCTET STRING.
    pub fn octet_string(&mut self) -> Result<&'a [u8], DecodeError> {
        Ok(self.expect(OCTET_STRING, "an OCTET STRING")?.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_fewest_octets() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7F]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(-1), [0x02, 0x01, 0xFF]);
        assert_eq!(integer(-129), [0x02, 0x02, 0xFF, 0x7F]);
        assert_eq!(
            unsigned(GAUGE32, u32::MAX),
            [0x42, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn oids_follow_x690() {
        // sysUpTime.0 = 1.3.6.1.2.1.1.3.0
        assert_eq!(
            oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]),
            [0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00]
        );
        // Arcs above 127 take several octets: 99999 = 0x1869F.
        assert_eq!(oid(&[1, 3, 99999]), [0x06, 0x04, 0x2B, 0x86, 0x8D, 0x1F]);
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let v = tlv(OCTET_STRING, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2C]);
        let mut r = Reader::new(&v);
        assert_eq!(r.octet_string().unwrap().len(), 300);
    }

    #[test]
    fn reads_back_what_it_writes() {
        let packet = constructed(
            SEQUENCE,
            &[
                integer(1),
                octet_string(b"public"),
                constructed(RESPONSE_PDU, &[integer(-5)]),
            ],
        );
        let mut outer = Reader::new(&packet);
        let mut seq = outer.expect(SEQUENCE, "a message").unwrap();
        assert_eq!(seq.integer().unwrap(), 1);
        assert_eq!(seq.octet_string().unwrap(), b"public");
        let mut pdu = seq.expect(RESPONSE_PDU, "a response").unwrap();
        assert_eq!(pdu.integer().unwrap(), -5);
        assert!(pdu.integer().is_err());
    }
}
