//! AWS Signature Version 4, header form (the `Authorization` header), for services
//! other than S3: the canonical URI is the URI-encoded path as sent.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm name.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS credentials.
pub(crate) struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token of temporary credentials (sent as `X-Amz-Security-Token`).
    pub session_token: Option<String>,
}

/// Where and when a request is signed.
pub(crate) struct Scope<'a> {
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `ec2`.
    pub service: &'a str,
    /// Time as `YYYYMMDDTHHMMSSZ`, the value of the `X-Amz-Date` header.
    pub amz_date: &'a str,
}

/// The parts of a request that are signed.
pub(crate) struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent (already percent-encoded), `/` at least.
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    /// Headers to sign, any case; must include `host` and `x-amz-date`.
    pub headers: &'a [(&'a str, String)],
    /// The body.
    pub payload: &'a [u8],
}

/// The value of the `Authorization` header for `request`.
pub(crate) fn authorization(credentials: &Credentials, scope: &Scope, request: &Request) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = string_to_sign(scope.amz_date, &credential_scope, &canonical);
    let key = signing_key(&credentials.secret_key, date, scope.region, scope.service);
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key
    )
}

/// The canonical request and the signed-headers list.
fn canonical_request(request: &Request) -> (String, String) {
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    let uri = uri_encode(path, false);
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let payload_hash = hex::encode(Sha256::digest(request.payload));
    let canonical = format!(
        "{}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method
    );
    (canonical, signed_headers)
}

fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{credential_scope}\n{hash}")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// AWS URI encoding: unreserved characters (`A-Za-z0-9-_.~`) stay, every other byte
/// becomes `%XX` (upper case); `/` stays unless `encode_slash`.
fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Vectors from AWS's published SigV4 test suite (`get-vanilla`,
    //! `get-vanilla-query-order-key-case`, `post-vanilla`) and the IAM `ListUsers`
    //! example of the "Create a signed AWS API request" documentation.

    use super::*;

    const AMZ_DATE: &str = "20150830T123600Z";

    fn suite_credentials() -> Credentials {
        Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn suite_scope() -> Scope<'static> {
        Scope {
            region: "us-east-1",
            service: "service",
            amz_date: AMZ_DATE,
        }
    }

    fn suite_headers() -> Vec<(&'static str, String)> {
        vec![
            ("Host", "example.amazonaws.com".into()),
            ("X-Amz-Date", AMZ_DATE.into()),
        ]
    }

    #[test]
    fn get_vanilla() {
        let headers = suite_headers();
        let request = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            string_to_sign(
                AMZ_DATE,
                "20150830/us-east-1/service/aws4_request",
                &canonical
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            authorization(&suite_credentials(), &suite_scope(), &request),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let headers = suite_headers();
        let query = [
            ("Param2".to_string(), "value2".to_string()),
            ("Param1".to_string(), "value1".to_string()),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload: b"",
        };
        assert!(
            authorization(&suite_credentials(), &suite_scope(), &request).ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn post_vanilla() {
        let headers = suite_headers();
        let request = Request {
            method: "POST",
            path: "/",
            query: &[],
            headers: &headers,
            payload: b"",
        };
        assert!(
            authorization(&suite_credentials(), &suite_scope(), &request).ends_with(
                "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn iam_list_users_documented_example() {
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("Host", "iam.amazonaws.com".to_string()),
            ("X-Amz-Date", AMZ_DATE.to_string()),
        ];
        let query = [
            ("Action".to_string(), "ListUsers".to_string()),
            ("Version".to_string(), "2010-05-08".to_string()),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload: b"",
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            hex::encode(signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830",
                "us-east-1",
                "iam"
            )),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
            amz_date: AMZ_DATE,
        };
        assert_eq!(
            authorization(&suite_credentials(), &scope, &request),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("a b/c", true), "a%20b%2Fc");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }
}
