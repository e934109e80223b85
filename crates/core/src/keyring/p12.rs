//! PKCS#12 / PFX (RFC 7292), read with the tolerant BER reader.
//!
//! p12-keystore 0.4.1 decodes strictly as DER and rejects the BER (indefinite-length) files that
//! NSS/Thunderbird and BouncyCastle/MimeKit write, so the container is walked here and only the
//! cryptography comes from crates (PKCS#12 KDF from `pkcs12`, PBES2 from `pkcs5`, ciphers from the
//! crypto provider).

use super::ber::{OCTET_STRING, SEQUENCE, Tlv, oid_text};
use super::pbe::{self, Password, PbeError};
use zeroize::Zeroizing;

const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const BAG_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01];
const X509_CERT: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P12Error {
    NeedsPassword,
    WrongPassword,
    Corrupt(String),
    Unsupported(String),
}

impl From<super::ber::BerError> for P12Error {
    fn from(e: super::ber::BerError) -> Self {
        P12Error::Corrupt(e.0)
    }
}

impl From<PbeError> for P12Error {
    fn from(e: PbeError) -> Self {
        match e {
            PbeError::WrongPassword => P12Error::WrongPassword,
            PbeError::Unsupported(s) => P12Error::Unsupported(s),
            PbeError::Corrupt(s) => P12Error::Corrupt(s),
        }
    }
}

#[derive(Default)]
pub struct P12Contents {
    /// Decrypted PKCS#8 PrivateKeyInfo blobs (as stored; normalised by the caller).
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub certs: Vec<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Is this the outer structure of a PFX: SEQUENCE { INTEGER 3, ContentInfo, ... }?
pub fn looks_like_pfx(f: &[Tlv<'_>]) -> bool {
    f.len() >= 2
        && f[0].small_uint().ok() == Some(3)
        && f[1].tag == SEQUENCE
        && f[1].children().ok().and_then(|c| {
            c.first()
                .and_then(|o| o.oid().ok())
                .map(|o| o == DATA || o == SIGNED_DATA)
        }) == Some(true)
}

/// The content octets of a ContentInfo of type data.
type ContentInfo<'a> = (Vec<u8>, Option<Zeroizing<Vec<u8>>>, Option<Tlv<'a>>);

fn content_info<'a>(t: &Tlv<'a>) -> Result<ContentInfo<'a>, P12Error> {
    let f = t.seq()?;
    let oid = f
        .first()
        .ok_or_else(|| P12Error::Corrupt("empty ContentInfo".into()))?
        .oid()?;
    let explicit = match f.get(1) {
        Some(x) if x.tag == 0xa0 => x.children()?.into_iter().next(),
        Some(_) => return Err(P12Error::Corrupt("ContentInfo content is not [0]".into())),
        None => None,
    };
    if oid == DATA {
        let os =
            explicit.ok_or_else(|| P12Error::Corrupt("data ContentInfo without content".into()))?;
        if os.tag & !0x20 != OCTET_STRING {
            return Err(P12Error::Corrupt(
                "data content is not an OCTET STRING".into(),
            ));
        }
        return Ok((oid.to_vec(), Some(os.octets()?), None));
    }
    Ok((oid.to_vec(), None, explicit))
}

/// Parses a PFX. With `password` None or empty, both the empty password and "no password" are
/// tried; with a password that fails, those are tried too (and a warning says so).
pub fn parse(data: &[u8], password: Option<&str>) -> Result<P12Contents, P12Error> {
    let outer = Tlv::parse_exact(data)?;
    let pfx = outer.seq()?;
    if !looks_like_pfx(&pfx) {
        return Err(P12Error::Corrupt("not a PKCS#12 PFX".into()));
    }
    let (ct, auth, _) = content_info(&pfx[1])?;
    if ct.as_slice() != DATA {
        return Err(P12Error::Unsupported(
            "PKCS#12 in public-key integrity mode (signedData authSafe)".into(),
        ));
    }
    let auth = auth.ok_or_else(|| P12Error::Corrupt("no authSafe content".into()))?;

    let given = password.filter(|p| !p.is_empty());
    let mut candidates: Vec<(Password, bool)> = Vec::new();
    if let Some(p) = given {
        candidates.push((Password::new(p), false));
    }
    candidates.push((Password::new(""), given.is_some()));
    candidates.push((Password::absent(), given.is_some()));

    let mac = pfx.get(2).filter(|t| t.tag == SEQUENCE);
    let no_password_error = || {
        if given.is_some() {
            P12Error::WrongPassword
        } else {
            P12Error::NeedsPassword
        }
    };
    if let Some(mac) = mac {
        for (pw, fallback) in &candidates {
            if pbe::verify_p12_mac(mac, &auth, pw)? {
                let mut c = parse_auth_safe(&auth, pw)?;
                if *fallback {
                    c.warnings.push(
                        "the password given did not fit; opened with an empty password".into(),
                    );
                }
                return Ok(c);
            }
        }
        // No candidate verifies the MAC. If the password given decrypts the contents anyway,
        // the password is right and the file is damaged or altered: say so, rather than send
        // the admin looking for another password.
        if let Some((pw, _)) = candidates.first().filter(|_| given.is_some())
            && parse_auth_safe(&auth, pw).is_ok_and(|c| !c.keys.is_empty())
        {
            return Err(P12Error::Corrupt(
                "the MAC does not verify although the password decrypts the contents: the \
                 file is damaged or was altered"
                    .into(),
            ));
        }
        return Err(no_password_error());
    }
    // No MAC: the password is only checked by decryption.
    let mut last = no_password_error();
    for (pw, fallback) in &candidates {
        match parse_auth_safe(&auth, pw) {
            Ok(mut c) => {
                c.warnings
                    .push("PKCS#12 file has no MAC (integrity not checked)".into());
                if *fallback {
                    c.warnings.push(
                        "the password given did not fit; opened with an empty password".into(),
                    );
                }
                return Ok(c);
            }
            Err(P12Error::WrongPassword) => {}
            Err(e) => last = e,
        }
    }
    Err(match last {
        P12Error::WrongPassword | P12Error::NeedsPassword => no_password_error(),
        e => e,
    })
}

fn parse_auth_safe(auth: &[u8], pw: &Password) -> Result<P12Contents, P12Error> {
    let mut out = P12Contents::default();
    let t = Tlv::parse_exact(auth)?;
    for ci in t.seq()? {
        let (ct, data, explicit) = content_info(&ci)?;
        let decrypted = data.is_none();
        let safe = if let Some(d) = data {
            d
        } else if ct.as_slice() == ENCRYPTED_DATA {
            let ed = explicit
                .ok_or_else(|| P12Error::Corrupt("encryptedData without content".into()))?;
            let ed = ed.seq()?;
            let eci = ed
                .get(1)
                .ok_or_else(|| P12Error::Corrupt("EncryptedData too short".into()))?
                .seq()?;
            if eci.len() < 3 {
                // No encryptedContent: nothing inside.
                continue;
            }
            if eci[2].tag & !0x20 != 0x80 {
                return Err(P12Error::Corrupt("encryptedContent is not [0]".into()));
            }
            let ct_bytes = eci[2].octets()?;
            pbe::decrypt(&eci[1], &ct_bytes, pw)?
        } else if ct.as_slice() == ENVELOPED_DATA {
            out.warnings
                .push("skipped a public-key-encrypted PKCS#12 safe (envelopedData)".into());
            continue;
        } else {
            out.warnings
                .push(format!("skipped a PKCS#12 safe of type {}", oid_text(&ct)));
            continue;
        };
        parse_safe_contents(&safe, pw, &mut out, 0, decrypted)?;
    }
    Ok(out)
}

fn parse_safe_contents(
    data: &[u8],
    pw: &Password,
    out: &mut P12Contents,
    depth: usize,
    decrypted: bool,
) -> Result<(), P12Error> {
    if depth > 4 {
        return Err(P12Error::Corrupt("safeContentsBag nested too deep".into()));
    }
    // A wrong password with lucky padding yields garbage here; call it what it is.
    let garbage = |e: super::ber::BerError| {
        if decrypted {
            P12Error::WrongPassword
        } else {
            P12Error::Corrupt(e.0)
        }
    };
    let t = Tlv::parse_exact(data).map_err(garbage)?;
    let bags = t.seq().map_err(garbage)?;
    for bag in bags {
        let f = bag.seq()?;
        if f.len() < 2 || f[1].tag != 0xa0 {
            return Err(P12Error::Corrupt("malformed SafeBag".into()));
        }
        let oid = f[0].oid()?;
        let value = f[1]
            .children()?
            .into_iter()
            .next()
            .ok_or_else(|| P12Error::Corrupt("empty SafeBag".into()))?;
        match oid.strip_prefix(BAG_PREFIX) {
            Some([1]) => out.keys.push(value.to_der()?),
            Some([2]) => {
                let e = value.seq()?;
                if e.len() != 2 {
                    return Err(P12Error::Corrupt(
                        "malformed EncryptedPrivateKeyInfo".into(),
                    ));
                }
                let ct = e[1].octets()?;
                out.keys.push(pbe::decrypt(&e[0], &ct, pw)?);
            }
            Some([3]) => {
                let cb = value.seq()?;
                if cb.len() < 2 || cb[1].tag != 0xa0 {
                    return Err(P12Error::Corrupt("malformed CertBag".into()));
                }
                if cb[0].oid()? != X509_CERT {
                    out.warnings.push(format!(
                        "skipped a certificate of type {}",
                        oid_text(cb[0].content)
                    ));
                    continue;
                }
                let os = cb[1]
                    .children()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| P12Error::Corrupt("empty CertBag".into()))?;
                out.certs.push(os.octets()?.to_vec());
            }
            Some([6]) => parse_safe_contents(value.raw, pw, out, depth + 1, false)?,
            Some([4 | 5]) => {}
            _ => out
                .warnings
                .push(format!("skipped a PKCS#12 bag of type {}", oid_text(oid))),
        }
    }
    Ok(())
}
