//! Azure Data Lake Storage: which credential fitlake uses, one object store per container, and
//! creating the containers a lakehouse lives in.
//!
//! Credentials come from the environment, the first that is set winning:
//! 1. `AZURE_STORAGE_USE_EMULATOR=true`: the Azurite emulator at `AZURITE_BLOB_STORAGE_URL`
//!    (default `http://127.0.0.1:10000`) with its well-known account key, or the key or SAS
//!    token below when one is set;
//! 2. `AZURE_STORAGE_ACCOUNT_KEY`: the storage account's shared key;
//! 3. `AZURE_STORAGE_SAS_TOKEN`: a shared access signature;
//! 4. otherwise Microsoft Entra ID tokens from `azure_identity`, trying in order the service
//!    principal of the environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_CLIENT_SECRET`), the managed identity (user-assigned when only `AZURE_CLIENT_ID` is
//!    set), and the Azure CLI's login; the first that answers is kept.
//!
//! Secrets never appear in messages: every error fitlake prints goes through
//! [`crate::secret::redact`]. This module is the cargo feature `azure`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use azure_core::credentials::{Secret as TokenSecret, TokenCredential};
use base64::Engine as _;
use object_store::azure::{AzureConfigKey, AzureCredential, MicrosoftAzureBuilder};
use object_store::{CredentialProvider, ObjectStore};
use url::Url;

use crate::secret::{redact, Secret};
use crate::stores::{AzureLocation, ContainerState};
use crate::{Error, Result};

/// The OAuth scope of Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The storage REST API version fitlake's own requests (container creation) speak.
const API_VERSION: &str = "2021-08-06";

/// Azurite's well-known account key (public, documented by Microsoft; not a secret).
const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How fitlake authenticates to Azure storage.
#[derive(Debug, Clone)]
pub enum AzureAuth {
    /// The Azurite emulator, reached at `endpoint`, with its well-known account key unless
    /// `key` or `sas` is given.
    Emulator {
        /// The emulator's blob endpoint, e.g. `http://127.0.0.1:10000`.
        endpoint: Url,
        /// An account key other than the well-known one.
        key: Option<Secret>,
        /// A shared access signature instead of a key.
        sas: Option<Secret>,
    },
    /// The storage account's shared key.
    AccountKey(Secret),
    /// A shared access signature (query string without the leading `?`).
    Sas(Secret),
    /// Microsoft Entra ID tokens from the first credential of the chain that answers.
    Identity(Arc<IdentityChain>),
}

fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

impl AzureAuth {
    /// The credential the environment (`var` looks a variable up) asks for; a variable that is
    /// set but unusable is a configuration error naming it (never its value).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<AzureAuth> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let account_key = match var("AZURE_STORAGE_ACCOUNT_KEY") {
            Some(key) if base64::engine::general_purpose::STANDARD.decode(key.trim()).is_err() => {
                return Err(Error::Config(
                    "AZURE_STORAGE_ACCOUNT_KEY is not base64; copy key1 or key2 from the storage account's Access keys"
                        .into(),
                ))
            }
            key => key.map(|k| Secret::new(k.trim())),
        };
        let sas = match var("AZURE_STORAGE_SAS_TOKEN") {
            Some(sas) => {
                let sas = sas.trim().trim_start_matches('?').to_string();
                if !sas.split('&').any(|p| p.starts_with("sig=")) {
                    return Err(Error::Config(
                        "AZURE_STORAGE_SAS_TOKEN has no sig= parameter; give the whole SAS query string (sv=…&sig=…)"
                            .into(),
                    ));
                }
                Some(Secret::new(sas))
            }
            None => None,
        };
        if var("AZURE_STORAGE_USE_EMULATOR").is_some_and(|v| truthy(&v)) {
            let text = var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|| "http://127.0.0.1:10000".into());
            let endpoint = Url::parse(&text).map_err(|e| {
                Error::Config(format!(
                    "AZURITE_BLOB_STORAGE_URL {text:?} is not a URL ({e}); e.g. http://127.0.0.1:10000"
                ))
            })?;
            return Ok(AzureAuth::Emulator { endpoint, key: account_key, sas });
        }
        if let Some(key) = account_key {
            return Ok(AzureAuth::AccountKey(key));
        }
        if let Some(sas) = sas {
            return Ok(AzureAuth::Sas(sas));
        }
        Ok(AzureAuth::Identity(Arc::new(IdentityChain::from_env(var)?)))
    }

    /// The shared key requests are signed with, if any.
    fn shared_key(&self) -> Option<&str> {
        match self {
            AzureAuth::AccountKey(key) | AzureAuth::Emulator { key: Some(key), .. } => Some(key.expose()),
            AzureAuth::Emulator { key: None, sas: None, .. } => Some(EMULATOR_ACCOUNT_KEY),
            _ => None,
        }
    }

    /// The shared access signature requests carry, if any.
    fn sas(&self) -> Option<&str> {
        match self {
            AzureAuth::Sas(sas) | AzureAuth::Emulator { key: None, sas: Some(sas), .. } => Some(sas.expose()),
            _ => None,
        }
    }

    /// What the credential is, for messages (never its value).
    pub fn describe(&self) -> &'static str {
        match self {
            AzureAuth::Emulator { sas: Some(_), key: None, .. } => "the SAS token in AZURE_STORAGE_SAS_TOKEN",
            AzureAuth::Emulator { .. } => "the Azurite emulator's account key",
            AzureAuth::AccountKey(_) => "the account key in AZURE_STORAGE_ACCOUNT_KEY",
            AzureAuth::Sas(_) => "the SAS token in AZURE_STORAGE_SAS_TOKEN",
            AzureAuth::Identity(_) => "a Microsoft Entra ID token",
        }
    }
}

/// One credential of the identity chain: its name and, when configured, the credential.
type ChainLink = (&'static str, std::result::Result<Arc<dyn TokenCredential>, String>);

/// Entra ID credentials tried in order; the first that gives a token is kept for later calls.
#[derive(Debug)]
pub struct IdentityChain {
    links: Vec<ChainLink>,
    /// The link that answered last (tried first next time).
    preferred: AtomicUsize,
    /// The last token (a secret: `{:?}` of the chain must not show it) and its expiry (epoch
    /// seconds).
    cached: tokio::sync::Mutex<Option<(Secret, i64)>>,
}

/// How long before its expiry a token is renewed, seconds.
const TOKEN_RENEW_BEFORE: i64 = 300;

impl IdentityChain {
    /// The chain of the issue's order: environment service principal, managed identity,
    /// Azure CLI.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<IdentityChain> {
        let (tenant, client, secret) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"), var("AZURE_CLIENT_SECRET"));
        let service_principal: std::result::Result<Arc<dyn TokenCredential>, String> = match (&tenant, &client, secret)
        {
            (Some(tenant), Some(client), Some(secret)) => {
                let credential =
                    azure_identity::ClientSecretCredential::new(tenant, client.clone(), TokenSecret::new(secret), None)
                        .map_err(|e| {
                            Error::Config(format!(
                                "AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET: {}",
                                redact(&e.to_string())
                            ))
                        })?;
                Ok(credential)
            }
            (_, _, Some(_)) => {
                return Err(Error::Config(
                    "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not; set all three for a \
                     service principal"
                        .into(),
                ))
            }
            _ => Err("not configured (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)".into()),
        };
        let options = client.map(|id| azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: Some(azure_identity::UserAssignedId::ClientId(id)),
            ..Default::default()
        });
        let managed = azure_identity::ManagedIdentityCredential::new(options)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| e.to_string());
        let cli = azure_identity::AzureCliCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| e.to_string());
        Ok(IdentityChain::new(vec![
            ("environment service principal", service_principal),
            ("managed identity", managed),
            ("Azure CLI", cli),
        ]))
    }

    /// A chain over `links`, tried in the order given (a link whose credential is an `Err`
    /// is reported as such and skipped).
    pub fn new(links: Vec<ChainLink>) -> IdentityChain {
        IdentityChain { links, preferred: AtomicUsize::new(0), cached: tokio::sync::Mutex::new(None) }
    }

    /// A bearer token for Azure Storage, from the cache while it is valid for five more minutes.
    pub async fn token(&self, now_epoch_seconds: i64) -> std::result::Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if *expires - TOKEN_RENEW_BEFORE > now_epoch_seconds {
                return Ok(token.expose().to_string());
            }
        }
        let first = self.preferred.load(Ordering::Relaxed).min(self.links.len().saturating_sub(1));
        let order = (first..self.links.len()).chain(0..first);
        let mut failures = Vec::new();
        for i in order {
            let (name, link) = &self.links[i];
            match link {
                Err(why) => failures.push((i, format!("{name}: {why}"))),
                Ok(credential) => match credential.get_token(&[STORAGE_SCOPE], None).await {
                    Ok(token) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        let value = token.token.secret().to_string();
                        *cached = Some((Secret::new(value.clone()), token.expires_on.unix_timestamp()));
                        return Ok(value);
                    }
                    Err(e) => failures.push((i, format!("{name}: {}", first_line(&e.to_string())))),
                },
            }
        }
        failures.sort();
        let tried: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
        Err(redact(&format!(
            "no Azure credential worked (tried in order: {}); sign in with `az login`, run with a managed identity, \
             or set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN",
            tried.join("; ")
        )))
    }
}

/// The subject of a Microsoft Entra ID access token: its object id (`oid`) and application id
/// (`appid` in v1 tokens, `azp` in v2). The token is one fitlake was just issued over TLS by
/// Entra ID, so its claims are read, not verified again; storage verifies it on every request.
pub fn token_identity(token: &str) -> std::result::Result<fitlake_governance::Identity, String> {
    let payload = token.split('.').nth(1).ok_or("the Entra ID token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the Entra ID token's claims are not base64url: {e}"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the Entra ID token's claims are not JSON: {e}"))?;
    let claim = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let identity =
        fitlake_governance::Identity::Entra { object_id: claim("oid"), app_id: claim("appid").or(claim("azp")) };
    match &identity {
        fitlake_governance::Identity::Entra { object_id: None, app_id: None } => {
            Err("the Entra ID token names no object id (oid) or application id (appid, azp)".into())
        }
        _ => Ok(identity),
    }
}

impl AzureStores {
    /// The Entra ID identity storage is reached as, when the credential is an Entra ID token
    /// (`None` for an account key, a SAS token or the emulator: they carry no identity).
    pub(crate) async fn entra_identity(&self) -> Result<Option<fitlake_governance::Identity>> {
        let AzureAuth::Identity(chain) = self.auth()? else { return Ok(None) };
        let token = chain.token(chrono::Utc::now().timestamp()).await.map_err(Error::Config)?;
        token_identity(&token).map(Some).map_err(Error::Config)
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[async_trait::async_trait]
impl CredentialProvider for IdentityChain {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        let token = self
            .token(chrono::Utc::now().timestamp())
            .await
            .map_err(|message| object_store::Error::Generic { store: "MicrosoftAzure", source: message.into() })?;
        Ok(Arc::new(AzureCredential::BearerToken(token)))
    }
}

/// The Azure side of [`crate::Stores`]: the credential and one object store per container.
#[derive(Debug)]
pub(crate) struct AzureStores {
    /// The Azure credential, or why the environment gives none: read when Azure is first
    /// used (a managed-identity credential builds an HTTP client, 20 ms that a run on local
    /// storage never needs).
    auth: OnceLock<std::result::Result<AzureAuth, String>>,
    /// One store per `account/container`, created on first use.
    containers: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// Registers deltalake's `abfss://` log store handlers (once per process).
pub(crate) fn register_handlers() {
    static AZURE_HANDLERS: Once = Once::new();
    AZURE_HANDLERS.call_once(|| deltalake::azure::register_handlers(None));
}

impl AzureStores {
    /// With the credential the process environment gives.
    pub(crate) fn from_env() -> AzureStores {
        AzureStores { auth: OnceLock::new(), containers: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn new(auth: std::result::Result<AzureAuth, String>) -> AzureStores {
        AzureStores { auth: OnceLock::from(auth), containers: Mutex::new(HashMap::new()) }
    }

    /// The Azure credential, or the configuration error that stops it.
    pub(crate) fn auth(&self) -> Result<&AzureAuth> {
        let auth = self.auth.get_or_init(|| {
            AzureAuth::from_env(|name| std::env::var(name).ok()).map_err(|e| match e {
                Error::Config(message) => message,
                other => other.to_string(),
            })
        });
        auth.as_ref().map_err(|message| Error::Config(message.clone()))
    }

    /// The store of `location`'s container (`url` names it in errors).
    pub(crate) fn container_store(&self, url: &Url, location: &AzureLocation) -> Result<Arc<dyn ObjectStore>> {
        let key = format!("{}/{}", location.account, location.container);
        let mut containers = self.containers.lock().map_err(|_| Error::Internal("store cache poisoned".into()))?;
        if let Some(store) = containers.get(&key) {
            return Ok(store.clone());
        }
        let auth = self.auth()?;
        let builder = MicrosoftAzureBuilder::new()
            .with_account(&location.account)
            .with_container_name(&location.container)
            .with_endpoint(format!("https://{}", location.blob_host));
        let builder = match auth {
            // object_store takes the emulator's address from AZURITE_BLOB_STORAGE_URL, as
            // AzureAuth::from_env does.
            AzureAuth::Emulator { key: Some(key), .. } => builder.with_use_emulator(true).with_access_key(key.expose()),
            AzureAuth::Emulator { sas: Some(sas), .. } => {
                builder.with_use_emulator(true).with_config(AzureConfigKey::SasKey, sas.expose())
            }
            AzureAuth::Emulator { .. } => builder.with_use_emulator(true),
            AzureAuth::AccountKey(key) => builder.with_access_key(key.expose()),
            AzureAuth::Sas(sas) => builder.with_config(AzureConfigKey::SasKey, sas.expose()),
            AzureAuth::Identity(chain) => builder.with_credentials(chain.clone()),
        };
        let store: Arc<dyn ObjectStore> =
            Arc::new(builder.build().map_err(|e| Error::storage(url, redact(&e.to_string())))?);
        containers.insert(key, store.clone());
        Ok(store)
    }

    /// Creates `location`'s container when it does not exist. A credential without
    /// the right to create containers gets an error saying what to ask for.
    pub(crate) async fn ensure_container(&self, location: &AzureLocation) -> Result<ContainerState> {
        let auth = self.auth()?;
        let emulator = match auth {
            AzureAuth::Emulator { endpoint, .. } => Some(endpoint),
            _ => None,
        };
        let container_url = location.container_url(emulator)?;
        let client = reqwest::Client::new();
        let shown = location.to_string();
        let storage_error = |message: String| Error::storage(&shown, redact(&message));
        let properties = container_request(&client, auth, location, &container_url, reqwest::Method::GET).await?;
        match properties.status().as_u16() {
            200 => return Ok(ContainerState::Existed),
            404 => {}
            // Not allowed to look: creating it tells whether it exists (409) or may not be made.
            403 => {}
            status => {
                return Err(storage_error(format!("checking the container: HTTP {status} {}", error_code(&properties))))
            }
        }
        let created = container_request(&client, auth, location, &container_url, reqwest::Method::PUT).await?;
        match created.status().as_u16() {
            201 => Ok(ContainerState::Created),
            409 => Ok(ContainerState::Existed),
            403 => Err(storage_error(format!(
                "it is missing or cannot be checked, and {} may not create it (HTTP 403 {}); create it first \
                 (`az storage container create --account-name {} --name {} --auth-mode login`) or give this \
                 identity the Storage Blob Data Contributor role on the account",
                auth.describe(),
                error_code(&created),
                location.account,
                location.container
            ))),
            status => Err(storage_error(format!("creating it: HTTP {status} {}", error_code(&created)))),
        }
    }
}

fn error_code(response: &reqwest::Response) -> String {
    response.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Sends a container-level request (`restype=container`) signed for `auth`.
async fn container_request(
    client: &reqwest::Client,
    auth: &AzureAuth,
    location: &AzureLocation,
    container_url: &Url,
    method: reqwest::Method,
) -> Result<reqwest::Response> {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let mut url = container_url.clone();
    url.set_query(Some(&match auth.sas() {
        Some(sas) => format!("restype=container&{sas}"),
        None => "restype=container".to_string(),
    }));
    let authorization = match (auth.shared_key(), auth) {
        (Some(key), _) => {
            let signature = shared_key_signature(key, method.as_str(), &date, &location.account, url.path())?;
            Some(format!("SharedKey {}:{signature}", location.account))
        }
        (None, AzureAuth::Identity(chain)) => {
            let token = chain
                .token(chrono::Utc::now().timestamp())
                .await
                .map_err(|message| Error::storage(container_url, message))?;
            Some(format!("Bearer {token}"))
        }
        (None, _) => None,
    };
    let mut request = client
        .request(method, url)
        .header("x-ms-date", &date)
        .header("x-ms-version", API_VERSION)
        .header("content-length", "0");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.map_err(|e| Error::storage(container_url, redact(&crate::with_causes(&e.without_url()))))
}

/// The Shared Key signature of a container request without body or conditional headers.
fn shared_key_signature(key: &str, verb: &str, date: &str, account: &str, path: &str) -> Result<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| Error::Config("the storage account key is not base64".into()))?;
    // VERB, then Content-Encoding … Range (11 standard headers, all empty), then the x-ms-
    // headers and the resource.
    let string_to_sign = format!(
        "{verb}\n{}x-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{account}{path}\nrestype:container",
        "\n".repeat(11)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    Ok(base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, string_to_sign.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fake {
        answer: std::result::Result<&'static str, &'static str>,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, [STORAGE_SCOPE]);
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.answer {
                Ok(token) => Ok(azure_core::credentials::AccessToken::new(
                    token,
                    azure_core::time::OffsetDateTime::from_unix_timestamp(10_000).expect("time"),
                )),
                Err(why) => Err(azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, why)),
            }
        }
    }

    fn fake(answer: std::result::Result<&'static str, &'static str>) -> Arc<Fake> {
        Arc::new(Fake { answer, calls: AtomicUsize::new(0) })
    }

    #[tokio::test]
    async fn the_identity_is_the_subject_of_the_storage_token() {
        let claims = r#"{"aud":"https://storage.azure.com","oid":"11111111-1111-1111-1111-111111111111","appid":"22222222-2222-2222-2222-222222222222"}"#;
        let token: &'static str = Box::leak(
            format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims))
                .into_boxed_str(),
        );
        let chain = IdentityChain::new(vec![("managed identity", Ok(fake(Ok(token)) as Arc<dyn TokenCredential>))]);
        let stores = AzureStores::new(Ok(AzureAuth::Identity(Arc::new(chain))));
        let identity = stores.entra_identity().await.expect("identity").expect("an Entra identity");
        let policy = fitlake_governance::Policy::parse(&fitlake_governance::SHIPPED_POLICY.replace(
            "name = \"pipeline\"\nkind = \"service_principal\"",
            "name = \"pipeline\"\nkind = \"service_principal\"\nentra_app_ids = [\"22222222-2222-2222-2222-222222222222\"]",
        ))
        .expect("policy");
        assert_eq!(policy.run_as(&identity, None).expect("mapped"), "pipeline");
        assert!(policy.run_as(&identity, Some("producer")).is_err(), "the pipeline may not act as the producer");
        // Keys and SAS tokens carry no identity; a token without a subject is an error.
        let key = AzureStores::new(Ok(AzureAuth::AccountKey(Secret::new("a2V5"))));
        assert_eq!(key.entra_identity().await.expect("no identity"), None);
        for bad in ["not-a-jwt", "a.!!!.c", "a.e30.c"] {
            assert!(token_identity(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_chain_takes_the_first_credential_that_answers_and_keeps_it() {
        let (broken, working, later) = (fake(Err("no endpoint")), fake(Ok("token-2")), fake(Ok("token-3")));
        let chain = IdentityChain::new(vec![
            ("environment service principal", Err("not configured".into())),
            ("managed identity", Ok(broken.clone() as Arc<dyn TokenCredential>)),
            ("Azure CLI", Ok(working.clone() as Arc<dyn TokenCredential>)),
            ("later", Ok(later.clone() as Arc<dyn TokenCredential>)),
        ]);
        assert_eq!(chain.token(1_000).await.expect("token"), "token-2");
        // The cached token is a secret (the fake credentials show their own answers).
        let shown = format!("{chain:?}");
        assert!(shown.contains("Some((***, 10000))") && !shown.contains("(\"token-2\", 10000)"), "{shown}");
        assert_eq!((broken.calls.load(Ordering::Relaxed), later.calls.load(Ordering::Relaxed)), (1, 0));
        // Cached while valid for five more minutes; renewed from the link that answered.
        assert_eq!(chain.token(2_000).await.expect("token"), "token-2");
        assert_eq!(working.calls.load(Ordering::Relaxed), 1);
        assert_eq!(chain.token(9_800).await.expect("token"), "token-2");
        assert_eq!((working.calls.load(Ordering::Relaxed), broken.calls.load(Ordering::Relaxed)), (2, 1));
    }

    #[tokio::test]
    async fn a_chain_where_nothing_answers_says_what_it_tried_in_order() {
        let chain = IdentityChain::new(vec![
            ("environment service principal", Err("not configured".into())),
            ("managed identity", Ok(fake(Err("no endpoint")) as Arc<dyn TokenCredential>)),
            ("Azure CLI", Ok(fake(Err("az not found")) as Arc<dyn TokenCredential>)),
        ]);
        let message = chain.token(0).await.expect_err("nothing answers");
        let sp = message.find("environment service principal: not configured").expect("sp");
        let mi = message.find("managed identity: no endpoint").expect("mi");
        let cli = message.find("Azure CLI: az not found").expect("cli");
        assert!(sp < mi && mi < cli, "{message}");
        assert!(message.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{message}");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_environment_chooses_the_credential_and_bad_values_fail_without_showing_them() {
        let emulator = AzureAuth::from_env(env(&[
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:1234"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ]));
        assert!(
            matches!(emulator, Ok(AzureAuth::Emulator { endpoint, key: Some(key), sas: None }) if endpoint.port() == Some(1234) && key.expose() == "a2V5")
        );
        assert!(matches!(
            AzureAuth::from_env(env(&[("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"), ("AZURE_STORAGE_SAS_TOKEN", "sig=x")])),
            Ok(AzureAuth::AccountKey(_))
        ));
        assert!(
            matches!(AzureAuth::from_env(env(&[("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=abc")])), Ok(AzureAuth::Sas(s)) if s.expose() == "sv=1&sig=abc")
        );
        assert!(matches!(AzureAuth::from_env(env(&[])), Ok(AzureAuth::Identity(_))));

        let bad_key = AzureAuth::from_env(env(&[("AZURE_STORAGE_ACCOUNT_KEY", "not base64 !!secret")]));
        let message = bad_key.expect_err("bad key").to_string();
        assert!(
            message.contains("AZURE_STORAGE_ACCOUNT_KEY is not base64") && !message.contains("secret"),
            "{message}"
        );
        let half = AzureAuth::from_env(env(&[("AZURE_CLIENT_SECRET", "s3cr3t-value")]));
        let message = half.expect_err("half a service principal").to_string();
        assert!(message.contains("AZURE_TENANT_ID") && !message.contains("s3cr3t"), "{message}");
        assert!(format!("{:?}", AzureAuth::AccountKey(Secret::new("hidden-key"))).contains("***"));
    }

    #[test]
    fn shared_key_signatures_match_the_documented_algorithm() {
        // The string to sign for a container GET, signed with Azurite's public key, checked
        // against a signature computed independently (Python's hmac/hashlib).
        let signature = shared_key_signature(
            EMULATOR_ACCOUNT_KEY,
            "GET",
            "Thu, 26 Nov 2026 04:00:00 GMT",
            "devstoreaccount1",
            "/devstoreaccount1/lake",
        )
        .expect("signature");
        assert_eq!(signature, "qBp6vQRk8+ANfyOwK+j60ulApIYhVG56Ynw2I/Vj5KM=");
    }
}
