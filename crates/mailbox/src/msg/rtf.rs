//! Compressed RTF (PR_RTF_COMPRESSED, [MS-OXRTFCP]) decompression.

const PRESET: &[u8] = b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";

const COMPRESSED: u32 = 0x7546_5A4C; // "LZFu"
const UNCOMPRESSED: u32 = 0x414C_454D; // "MELA"

/// Upper bound on decompressed output, whatever the header claims.
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// Decompress; errors name the reason.
pub(crate) fn decompress(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    let u32_at = |i: usize| -> Option<u32> {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(comp_size), Some(raw_size), Some(comp_type)) = (u32_at(0), u32_at(4), u32_at(8))
    else {
        return Err("compressed RTF header truncated");
    };
    let end = (comp_size as usize).saturating_add(4).min(data.len());
    let body = data.get(16..end).unwrap_or(&[]);
    let cap = (raw_size as usize).min(MAX_OUTPUT);
    match comp_type {
        UNCOMPRESSED => Ok(body[..body.len().min(cap)].to_vec()),
        COMPRESSED => {
            let mut dict = [0u8; 4096];
            dict[..PRESET.len()].copy_from_slice(PRESET);
            let mut wpos = PRESET.len();
            let mut out = Vec::with_capacity(cap.min(body.len().saturating_mul(8)));
            let mut i = 0;
            while i < body.len() {
                let control = body[i];
                i += 1;
                for bit in 0..8 {
                    if out.len() >= cap {
                        return Ok(out);
                    }
                    if control & (1 << bit) == 0 {
                        let Some(&b) = body.get(i) else {
                            return Ok(out);
                        };
                        i += 1;
                        out.push(b);
                        dict[wpos] = b;
                        wpos = (wpos + 1) % 4096;
                    } else {
                        let (Some(&hi), Some(&lo)) = (body.get(i), body.get(i + 1)) else {
                            return Ok(out);
                        };
                        i += 2;
                        let v = u16::from_be_bytes([hi, lo]);
                        let offset = usize::from(v >> 4);
                        let len = usize::from(v & 0xF) + 2;
                        if offset == wpos {
                            return Ok(out);
                        }
                        for k in 0..len {
                            let b = dict[(offset + k) % 4096];
                            out.push(b);
                            dict[wpos] = b;
                            wpos = (wpos + 1) % 4096;
                        }
                    }
                }
            }
            Ok(out)
        }
        _ => Err("unknown compressed RTF type"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spec_example_decompresses() {
        // [MS-OXRTFCP] 3.1.1 example: "{\rtf1\ansi\ansicpg1252\pard hello world}\r\n"
        let data: &[u8] = &[
            0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5,
            0xc7, 0xa7, 0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42,
            0x32, 0x0a, 0xf3, 0x20, 0x68, 0x65, 0x6c, 0x09, 0x00, 0x20, 0x62, 0x77, 0x05, 0xb0,
            0x6c, 0x64, 0x7d, 0x0a, 0x80, 0x0f, 0xa0,
        ];
        let out = super::decompress(data).expect("decompress");
        assert_eq!(out, b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n");
    }

    #[test]
    fn garbage_is_an_error_or_bounded() {
        assert!(super::decompress(&[1, 2, 3]).is_err());
        let mut d = vec![0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF];
        d.extend_from_slice(&0x7546_5A4Cu32.to_le_bytes());
        d.extend_from_slice(&[0; 4]);
        d.extend(std::iter::repeat_n(0xFF, 1000));
        let out = super::decompress(&d).expect("bounded");
        assert!(out.len() <= 1000 * 8 * 17);
    }
}
