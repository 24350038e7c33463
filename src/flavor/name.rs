//! How a [`Flavor`] is named: in plans and journals (serde) and in messages (`Display`).

use super::{Flavor, Product};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a flavor is written in plans and journals: the PostgreSQL major's number, or a name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum FlavorName {
    Number(u32),
    Name(String),
}

impl From<Flavor> for FlavorName {
    fn from(f: Flavor) -> FlavorName {
        match f.product() {
            Product::PostgreSql => FlavorName::Number(f.number()),
            Product::OpenGauss => FlavorName::Name("opengauss".into()),
        }
    }
}

impl TryFrom<FlavorName> for Flavor {
    type Error = String;

    fn try_from(n: FlavorName) -> Result<Flavor, String> {
        match n {
            FlavorName::Number(n) => Flavor::from_number(n)
                .ok_or_else(|| format!("PostgreSQL {n} is not a supported major (14–18)")),
            FlavorName::Name(s) if s == "opengauss" => Ok(Flavor::OpenGauss),
            FlavorName::Name(s) => Err(format!("\"{s}\" is not a supported database")),
        }
    }
}

impl fmt::Display for Flavor {
    /// The major's number, as PostgreSQL's own messages name it ("PostgreSQL 15"); openGauss
    /// by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.product() {
            Product::PostgreSql => write!(f, "{}", self.number()),
            Product::OpenGauss => write!(f, "openGauss"),
        }
    }
}
