//! Secrets: the one type every secret is held in ([`Secret`], from `fitlake-config`), and the
//! redaction every message fitlake prints goes through.

/// The environment variables that hold secrets, whose values [`redact`] hides.
const SECRET_VARIABLES: [&str; 3] = ["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET"];

pub use fitlake_config::Secret;

/// `text` with every secret hidden: the values of the secret environment variables and any
/// SAS signature or Shared Key authorization it quotes.
pub fn redact(text: &str) -> String {
    let secrets: Vec<String> = SECRET_VARIABLES.iter().filter_map(|v| std::env::var(v).ok()).collect();
    redact_values(text, &secrets)
}

/// `text` with each of `secrets` (and any `sig=` value or Shared Key signature) replaced by
/// `***`.
pub fn redact_values(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let secret = secret.trim().trim_start_matches('?');
        if secret.len() >= 8 {
            out = out.replace(secret, "***");
        }
    }
    for marker in ["sig=", "sig%3D", "SharedKey ", "Bearer "] {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(marker) {
            let (before, after) = rest.split_at(at + marker.len());
            result.push_str(before);
            let end = after
                .find(|c: char| c == '&' || c == '"' || c == '\'' || c == ')' || c.is_whitespace())
                .unwrap_or(after.len());
            if end > 0 {
                result.push_str("***");
            }
            rest = &after[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_secrets_and_signatures() {
        let text = "GET https://a.blob.core.windows.net/c?sv=2021&sig=AbC%2Bd&se=1 failed: key=topsecretkey; \
                    Authorization: SharedKey acct:Zm9vYmFy and Bearer eyJ0eXAi.x";
        let out = redact_values(text, &["topsecretkey".into()]);
        assert_eq!(
            out,
            "GET https://a.blob.core.windows.net/c?sv=2021&sig=***&se=1 failed: key=***; \
             Authorization: SharedKey *** and Bearer ***"
        );
    }
}
