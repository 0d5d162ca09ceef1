//! Download URLs for the MCP server, signed for one tenant, one dataset and
//! one version with an expiry (HMAC-SHA256), instead of a bearer key: a URL
//! that leaks opens one file for a few minutes, and nothing else.
//!
//! `{base}/internal/storage/datasets/{dataset}.parquet?version={n}&tenant={t}&expires={unix}&signature={hex}`

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// How long a signed URL works: the sync step downloads at once.
pub const URL_TTL: time::Duration = time::Duration::minutes(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the download link has expired")]
    Expired,
    #[error("the download link's signature is not valid")]
    Invalid,
}

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl UrlSigner {
    /// The signing key is derived from the server's secret (`MCP_API_KEY`)
    /// for this one purpose, so every replica signs alike.
    pub fn new(secret: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"servicetsunami download links v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, tenant: Uuid, dataset: Uuid, version: i32, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{tenant}\n{dataset}\n{version}\n{expires}").as_bytes());
        mac
    }

    /// The URL of the dataset's Parquet file under `base` (the internal
    /// listener as the MCP server reaches it), valid for [`URL_TTL`].
    pub fn sign(&self, base: &str, tenant: Uuid, dataset: Uuid, version: i32) -> String {
        let expires = (OffsetDateTime::now_utc() + URL_TTL).unix_timestamp();
        let signature = hex::encode(
            self.mac(tenant, dataset, version, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{}/internal/storage/datasets/{dataset}.parquet?version={version}&tenant={tenant}&expires={expires}&signature={signature}",
            base.trim_end_matches('/')
        )
    }

    /// Checks a signature (in constant time) and the expiry.
    pub fn verify(
        &self,
        tenant: Uuid,
        dataset: Uuid,
        version: i32,
        expires: i64,
        signature: &str,
    ) -> Result<(), SignatureError> {
        let bytes = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(tenant, dataset, version, expires)
            .verify_slice(&bytes)
            .map_err(|_| SignatureError::Invalid)?;
        if OffsetDateTime::now_utc().unix_timestamp() >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (i64, String) {
        let query = url.split_once('?').unwrap().1;
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_owned()
        };
        (get("expires").parse().unwrap(), get("signature"))
    }

    #[test]
    fn a_url_opens_its_own_dataset_only_until_it_expires() {
        let signer = UrlSigner::new(&SecretString::from("0123456789abcdef0123"));
        let (tenant, dataset) = (Uuid::new_v4(), Uuid::new_v4());
        let url = signer.sign("http://127.0.0.1:3010/", tenant, dataset, 2);
        assert!(url.starts_with(&format!(
            "http://127.0.0.1:3010/internal/storage/datasets/{dataset}.parquet?version=2&tenant={tenant}&"
        )));
        let (expires, signature) = parts(&url);
        assert_eq!(
            signer.verify(tenant, dataset, 2, expires, &signature),
            Ok(())
        );
        let other = Uuid::new_v4();
        for (t, d, v, e, s) in [
            (other, dataset, 2, expires, signature.as_str()),
            (tenant, other, 2, expires, signature.as_str()),
            (tenant, dataset, 1, expires, signature.as_str()),
            (tenant, dataset, 2, expires + 3600, signature.as_str()),
            (tenant, dataset, 2, expires, "00"),
            (tenant, dataset, 2, expires, "not hex"),
        ] {
            assert_eq!(signer.verify(t, d, v, e, s), Err(SignatureError::Invalid));
        }
        let past = OffsetDateTime::now_utc().unix_timestamp() - 1;
        let stale = hex::encode(signer.mac(tenant, dataset, 2, past).finalize().into_bytes());
        assert_eq!(
            signer.verify(tenant, dataset, 2, past, &stale),
            Err(SignatureError::Expired)
        );
        let stranger = UrlSigner::new(&SecretString::from("another secret 0123456"));
        assert_eq!(
            stranger.verify(tenant, dataset, 2, expires, &signature),
            Err(SignatureError::Invalid)
        );
    }
}
