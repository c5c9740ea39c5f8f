//! One certificate from the CA (RFC 8555 §7.3–7.4): the account (found again by its key, or
//! registered), the order, its authorizations answered over HTTP-01, the CSR of a fresh
//! ECDSA P-256 key, finalization and the download of the full chain. Every wait polls with the
//! CA's `Retry-After` and ends at a deadline.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{AcmeError, Client};
use super::state::Challenges;

/// Longest time one issuance may take, end to end.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(180);
/// Polling interval when the CA sends no `Retry-After`, and the bounds of the one it sends.
const POLL_DEFAULT: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(10);

/// A certificate as issued: the PEM chain and the PEM (PKCS#8) key.
#[derive(Debug)]
pub struct Issued {
    /// Leaf first, then the intermediates, PEM.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// Finds the account of the client's key (`onlyReturnExisting` first, so a stored key never
/// registers twice), or registers it with `email`. Sets the client's `kid`.
pub fn account(client: &mut Client, email: Option<&str>) -> Result<String, AcmeError> {
    let url = client.directory.new_account.clone();
    let existing = client.post(&url, Some(&json!({ "onlyReturnExisting": true })));
    let answer = match existing {
        Ok(a) => a,
        Err(AcmeError::Problem { kind, .. }) if kind.ends_with(":accountDoesNotExist") => {
            let mut payload = json!({ "termsOfServiceAgreed": true });
            if let Some(mail) = email {
                payload["contact"] = json!([format!("mailto:{mail}")]);
            }
            client.post(&url, Some(&payload))?
        }
        Err(e) => return Err(e),
    };
    let kid = answer
        .location
        .ok_or_else(|| AcmeError::Protocol("newAccount sent no Location".into()))?;
    client.kid = Some(kid.clone());
    Ok(kid)
}

/// Orders and downloads a certificate for `name`, answering its HTTP-01 challenge through
/// `challenges` (the token is withdrawn afterwards, whatever happens).
pub fn issue(
    client: &mut Client,
    name: &str,
    challenges: &Challenges,
) -> Result<Issued, AcmeError> {
    let deadline = Instant::now() + ISSUE_DEADLINE;
    let new_order = client.directory.new_order.clone();
    let payload = json!({ "identifiers": [{ "type": "dns", "value": name }] });
    let answer = client.post(&new_order, Some(&payload))?;
    let order_url = answer
        .location
        .clone()
        .ok_or_else(|| AcmeError::Protocol("newOrder sent no Location".into()))?;
    let order = answer.json()?;
    let authorizations: Vec<String> = order["authorizations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if authorizations.is_empty() || authorizations.len() > 10 {
        return Err(AcmeError::Protocol(format!(
            "an order with {} authorizations for one name",
            authorizations.len()
        )));
    }
    for authz in &authorizations {
        authorize(client, authz, challenges, deadline)?;
    }
    let finalize = str_field(&order, "finalize")?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AcmeError::Local(format!("cannot make a key: {e}")))?;
    let csr = crate::auth::base64::encode_url_nopad(&csr_der(name, &key)?);
    let mut order = client
        .post(&finalize, Some(&json!({ "csr": csr })))?
        .json()?;
    let mut retry = None;
    loop {
        match order["status"].as_str() {
            Some("valid") => break,
            Some("processing" | "ready" | "pending") => {}
            other => {
                return Err(AcmeError::Failed(format!(
                    "the order for {name} is {}: {}",
                    other.unwrap_or("without status"),
                    order["error"]["detail"].as_str().unwrap_or("no detail")
                )))
            }
        }
        wait(retry, deadline, name)?;
        let answer = client.post(&order_url, None)?;
        retry = answer.retry_after;
        order = answer.json()?;
    }
    let certificate = str_field(&order, "certificate")?;
    let chain = client.post_accept(&certificate, None, "application/pem-certificate-chain")?;
    let chain_pem = String::from_utf8(chain.body)
        .map_err(|_| AcmeError::Protocol("the certificate chain is not text".into()))?;
    if !chain_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(AcmeError::Protocol(
            "the certificate chain is not PEM".into(),
        ));
    }
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The DER CSR for `name` signed by `key`: the name as its only SAN, and an empty subject (a CA
/// such as Let's Encrypt refuses a CN that is not among the SANs, and rcgen's default subject
/// has one).
fn csr_der(name: &str, key: &rcgen::KeyPair) -> Result<Vec<u8>, AcmeError> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| AcmeError::Local(format!("cannot make a CSR for {name}: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(key)
        .map_err(|e| AcmeError::Local(format!("cannot make a CSR for {name}: {e}")))?;
    Ok(csr.der().to_vec())
}

/// Brings one authorization to `valid`: nothing to do when it already is, else its HTTP-01
/// challenge is published, answered and polled.
fn authorize(
    client: &mut Client,
    url: &str,
    challenges: &Challenges,
    deadline: Instant,
) -> Result<(), AcmeError> {
    let authz = client.post(url, None)?.json()?;
    let name = authz["identifier"]["value"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    match authz["status"].as_str() {
        Some("valid") => {
            log::info!("ACME: the authorization for {name} is already valid");
            return Ok(());
        }
        Some("pending") => {}
        other => {
            return Err(AcmeError::Failed(format!(
                "the authorization for {name} is {}",
                other.unwrap_or("without status")
            )))
        }
    }
    let challenge = authz["challenges"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == "http-01"))
        .ok_or_else(|| {
            AcmeError::Failed(format!("the CA offers no http-01 challenge for {name}"))
        })?;
    let token = str_field(challenge, "token")?;
    let challenge_url = str_field(challenge, "url")?;
    let key_authorization = format!("{token}.{}", client.key.thumbprint());
    let _published = challenges.publish(&token, key_authorization)?;
    client.post(&challenge_url, Some(&json!({})))?;
    let mut retry = None;
    loop {
        wait(retry, deadline, &name)?;
        let answer = client.post(url, None)?;
        retry = answer.retry_after;
        let authz = answer.json()?;
        match authz["status"].as_str() {
            Some("valid") => return Ok(()),
            Some("pending" | "processing") => {}
            other => {
                let why = authz["challenges"]
                    .as_array()
                    .and_then(|l| l.iter().find(|c| c["type"] == "http-01"))
                    .and_then(|c| c["error"]["detail"].as_str())
                    .unwrap_or("no detail");
                return Err(AcmeError::Failed(format!(
                    "the http-01 challenge for {name} failed ({}): {why}",
                    other.unwrap_or("no status")
                )));
            }
        }
    }
}

/// Sleeps for the CA's `Retry-After` (bounded) or the default, failing past `deadline`.
fn wait(retry_after: Option<u64>, deadline: Instant, name: &str) -> Result<(), AcmeError> {
    let pause = retry_after
        .map(Duration::from_secs)
        .unwrap_or(POLL_DEFAULT)
        .clamp(Duration::from_millis(200), POLL_MAX);
    if Instant::now() + pause > deadline {
        return Err(AcmeError::Failed(format!(
            "the CA did not finish the certificate for {name} within {} s",
            ISSUE_DEADLINE.as_secs()
        )));
    }
    std::thread::sleep(pause);
    Ok(())
}

fn str_field(v: &Value, name: &str) -> Result<String, AcmeError> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| AcmeError::Protocol(format!("no `{name}` in the answer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    #[test]
    fn csr_names_the_host_only_as_its_san() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = csr_der("app.example.com", &key).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        let info = &csr.certification_request_info;
        assert_eq!(info.subject.iter_common_name().count(), 0, "no CN");
        let sans: Vec<String> = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter())
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(sans, ["app.example.com"]);
    }
}
