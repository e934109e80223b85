//! Streaming AES-GCM against the McGrew-Viega test cases (the GCM specification's, used by NIST
//! CAVP), including 8-byte and 60-byte nonces, with chunking at odd boundaries, and against
//! aws-lc's own AES-GCM for large inputs.

use unseal_core::Error;
use unseal_core::content::gcm::{GcmDecryptor, parse_gcm_parameters};
use unseal_core::provider::{CryptoProvider, all_providers};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Case {
    name: &'static str,
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}

const K: &str = "feffe9928665731c6d6a8f9467308308";
const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const A20: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const IV60: &str = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728\
                    c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";

const CASES: &[Case] = &[
    Case {
        name: "TC1 (empty)",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "",
        ct: "",
        tag: "58e2fccefa7e3061367f1d57a4e7455a",
    },
    Case {
        name: "TC2",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    Case {
        name: "TC3",
        key: K,
        iv: "cafebabefacedbaddecaf888",
        aad: "",
        pt: P64,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    },
    Case {
        name: "TC4 (AAD, 60-byte text)",
        key: K,
        iv: "cafebabefacedbaddecaf888",
        aad: A20,
        pt: P60,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    Case {
        name: "TC5 (8-byte IV)",
        key: K,
        iv: "cafebabefacedbad",
        aad: A20,
        pt: P60,
        ct: "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423\
             73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
        tag: "3612d2e79e3b0785561be14aaca2fccb",
    },
    Case {
        name: "TC6 (60-byte IV)",
        key: K,
        iv: IV60,
        aad: A20,
        pt: P60,
        ct: "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7\
             01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
        tag: "619cc5aefffe0bfa462af43c1699d050",
    },
    Case {
        name: "TC10 (AES-192)",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        iv: "cafebabefacedbaddecaf888",
        aad: A20,
        pt: P60,
        ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
             7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
        tag: "2519498e80f1478f37ba55bd6d27618c",
    },
    Case {
        name: "TC18 (AES-256, 60-byte IV)",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: IV60,
        aad: A20,
        pt: P60,
        ct: "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4\
             0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
        tag: "a44a8266ee1c8eb0c8b5d4cf5ae9f19a",
    },
];

/// When the decryptor is given the AAD: at the start, or only with the tag (how a streamed
/// AuthEnvelopedData meets its authAttrs, which follow the content).
#[derive(Clone, Copy, Debug)]
enum AadGiven {
    First,
    WithTheTag,
}

/// Decrypts `ct` fed in chunks of the given sizes (cycled), then checks `tag`; the AAD given
/// first.
fn decrypt_chunked(
    p: &dyn CryptoProvider,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
    chunks: &[usize],
) -> Result<Vec<u8>, Error> {
    decrypt_given(p, [key, iv, aad, ct, tag], chunks, AadGiven::First)
}

/// Decrypts `ct` fed in chunks of the given sizes (cycled), given the AAD as `given` says,
/// then checks `tag`.
fn decrypt_given(
    p: &dyn CryptoProvider,
    [key, iv, aad, ct, tag]: [&[u8]; 5],
    chunks: &[usize],
    given: AadGiven,
) -> Result<Vec<u8>, Error> {
    let first: &[u8] = match given {
        AadGiven::First => aad,
        AadGiven::WithTheTag => &[],
    };
    let mut d = GcmDecryptor::new(p, key, iv, first)?;
    let mut buf = ct.to_vec();
    let mut rest = buf.as_mut_slice();
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        d.update(head)?;
        rest = tail;
    }
    match given {
        AadGiven::First => d.finish(tag)?,
        AadGiven::WithTheTag => d.finish_with_late_aad(aad, tag)?,
    }
    Ok(buf)
}

/// Every specification vector with every provider, in every chunking of [`SPLITS`], gives its
/// plaintext.
fn every_vector_decrypts(given: AadGiven) {
    for p in all_providers() {
        for c in CASES {
            let fields = [c.key, c.iv, c.aad, c.ct, c.tag].map(hex);
            for split in SPLITS {
                let out = decrypt_given(p, fields.each_ref().map(|f| &f[..]), split, given)
                    .unwrap_or_else(|e| panic!("{} {} {split:?} {given:?}: {e}", p.name(), c.name));
                assert_eq!(
                    out,
                    hex(c.pt),
                    "{} {} {split:?} {given:?}",
                    p.name(),
                    c.name
                );
            }
        }
    }
}

const SPLITS: &[&[usize]] = &[
    &[usize::MAX],
    &[1],
    &[3, 5, 7],
    &[15, 1, 17],
    &[16],
    &[13, 0, 31],
    &[33],
];

#[test]
fn mcgrew_viega_vectors_all_chunkings() {
    every_vector_decrypts(AadGiven::First);
}

#[test]
fn truncated_tags_and_tag_mismatch() {
    for p in all_providers() {
        for c in CASES {
            let (key, iv, aad, ct, tag) =
                (hex(c.key), hex(c.iv), hex(c.aad), hex(c.ct), hex(c.tag));
            for len in 12..=16 {
                decrypt_chunked(p, &key, &iv, &aad, &ct, &tag[..len], &[7]).unwrap();
            }
            for len in [0, 4, 8, 11] {
                let err = decrypt_chunked(p, &key, &iv, &aad, &ct, &tag[..len], &[7]).unwrap_err();
                assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
            }
            let mut long = tag.clone();
            long.push(0);
            let err = decrypt_chunked(p, &key, &iv, &aad, &ct, &long, &[7]).unwrap_err();
            assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");

            let mut bad_tag = tag.clone();
            bad_tag[15] ^= 1;
            let err = decrypt_chunked(p, &key, &iv, &aad, &ct, &bad_tag, &[7]).unwrap_err();
            assert!(
                matches!(err, Error::AuthenticationFailed { .. }),
                "{} {err:?}",
                c.name
            );
            if !ct.is_empty() {
                let mut bad_ct = ct.clone();
                let last = bad_ct.len() - 1;
                bad_ct[last] ^= 0x80;
                let err = decrypt_chunked(p, &key, &iv, &aad, &bad_ct, &tag, &[7]).unwrap_err();
                assert!(
                    matches!(err, Error::AuthenticationFailed { .. }),
                    "{} {err:?}",
                    c.name
                );
            }
            let mut bad_aad = aad.clone();
            bad_aad.push(0);
            let err = decrypt_chunked(p, &key, &iv, &bad_aad, &ct, &tag, &[7]).unwrap_err();
            assert!(
                matches!(err, Error::AuthenticationFailed { .. }),
                "{} {err:?}",
                c.name
            );
        }
    }
}

#[test]
fn rejects_bad_key_and_empty_nonce() {
    for p in all_providers() {
        for key_len in [0, 15, 17, 31, 33] {
            assert!(GcmDecryptor::new(p, &vec![0u8; key_len], &[0u8; 12], b"").is_err());
        }
        assert!(GcmDecryptor::new(p, &[0u8; 16], &[], b"").is_err());
    }
}

/// Large inputs against aws-lc's AEAD (12-byte nonce), fed in uneven chunks crossing the keystream
/// batch size.
#[test]
fn large_input_matches_aws_lc_aead() {
    use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let pt: Vec<u8> = (0..100_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let aad = b"authAttrs stand-in";
    let nonce = [0x42u8; 12];
    for (alg, key) in [
        (&AES_128_GCM, vec![0x11u8; 16]),
        (&AES_256_GCM, vec![0x22u8; 32]),
    ] {
        let sealing = LessSafeKey::new(UnboundKey::new(alg, &key).unwrap());
        let mut ct = pt.clone();
        let tag = sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut ct,
            )
            .unwrap();
        for p in all_providers() {
            for split in [&[usize::MAX][..], &[1021, 3, 4096, 17], &[65_536]] {
                let out = decrypt_chunked(p, &key, &nonce, aad, &ct, tag.as_ref(), split).unwrap();
                assert!(out == pt, "{} {split:?}", p.name());
            }
        }
    }
}

#[test]
fn gcm_parameters() {
    // SEQUENCE { OCTET STRING (12) }: default ICV length 12.
    let der = hex("300e 040c cafebabefacedbaddecaf888");
    assert_eq!(
        parse_gcm_parameters(&der).unwrap(),
        (hex("cafebabefacedbaddecaf888"), 12)
    );
    // With aes-ICVlen 16, as OpenSSL writes it.
    let der = hex("3011 040c cafebabefacedbaddecaf888 020110");
    assert_eq!(
        parse_gcm_parameters(&der).unwrap(),
        (hex("cafebabefacedbaddecaf888"), 16)
    );
    // A 60-byte nonce is allowed.
    let mut der = hex("303e 043c");
    der.extend(hex(IV60));
    assert_eq!(parse_gcm_parameters(&der).unwrap(), (hex(IV60), 12));
    // ICV length out of range, empty nonce, trailing data, truncation, wrong types.
    for bad in [
        "3011 040c cafebabefacedbaddecaf888 02010b",
        "3011 040c cafebabefacedbaddecaf888 020111",
        "3011 040c cafebabefacedbaddecaf888 0201ff",
        "3002 0400",
        "300f 040c cafebabefacedbaddecaf888 00",
        "300e 040c cafebabefacedbaddecaf888 00",
        "300e 040c cafebabefacedbaddecaf8",
        "300e 020c cafebabefacedbaddecaf888",
        "0500",
        "",
        "30",
        "3084ffffffff",
    ] {
        let err = parse_gcm_parameters(&hex(bad)).unwrap_err();
        assert!(matches!(err, Error::BadParameters { .. }), "{bad}: {err:?}");
    }
}

/// The AAD given after the ciphertext authenticates exactly as the AAD given first: every
/// specification vector (those with AAD and those without), inputs long enough for thousands of
/// zero blocks, AAD lengths on and off the block size; and a changed AAD or tag is refused.
#[test]
fn additional_data_given_after_the_ciphertext_authenticates_the_same() {
    every_vector_decrypts(AadGiven::WithTheTag);
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let late = AadGiven::WithTheTag;
    let key = [0x5au8; 32];
    let nonce = [0x24u8; 12];
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    for (len, aad_len) in [(0usize, 1usize), (15, 16), (70_001, 17), (300_000, 171)] {
        let pt: Vec<u8> = (0..len as u32).map(|i| (i * 31 % 253) as u8).collect();
        let aad: Vec<u8> = (0..aad_len as u32).map(|i| (i * 7 + 1) as u8).collect();
        let mut ct = pt.clone();
        let tag = sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut ct,
            )
            .unwrap();
        for p in all_providers() {
            let out = decrypt_given(p, [&key, &nonce, &aad, &ct, tag.as_ref()], &[4099], late)
                .unwrap_or_else(|e| panic!("{} {len}/{aad_len}: {e}", p.name()));
            assert!(out == pt, "{} {len}/{aad_len}", p.name());
            let mut other = aad.clone();
            other[aad_len - 1] ^= 1;
            let e = decrypt_given(p, [&key, &nonce, &other, &ct, tag.as_ref()], &[4099], late)
                .expect_err("changed AAD");
            assert!(matches!(e, Error::AuthenticationFailed { .. }), "{e}");
            let e = decrypt_given(p, [&key, &nonce, &[], &ct, tag.as_ref()], &[4099], late)
                .expect_err("AAD left out");
            assert!(matches!(e, Error::AuthenticationFailed { .. }), "{e}");
        }
    }
}
