//! The chart of accounts is data, not code: `chart_of_accounts.csv` (compiled in as the default,
//! or the file named by `ORDERFLOW_ACCOUNTING_CHART_FILE`) is upserted into `accounts` at every
//! start-up, so finance renames or renumbers accounts without a release. Code knows only the
//! *roles* the posting rules need; the file says which account plays each role.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use crate::csv;

/// The chart shipped with the service.
pub const DEFAULT_CHART: &str = include_str!("../chart_of_accounts.csv");

const HEADER: [&str; 5] = ["code", "name", "type", "normal_side", "role"];
const TYPES: [&str; 5] = ["asset", "liability", "equity", "revenue", "expense"];

/// The part an account plays in an order's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Receivable,
    SalesRevenue,
    TaxPayable,
    ShippingRevenue,
    CostOfGoodsSold,
    SupplierPayable,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Receivable,
        Role::SalesRevenue,
        Role::TaxPayable,
        Role::ShippingRevenue,
        Role::CostOfGoodsSold,
        Role::SupplierPayable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Receivable => "receivable",
            Role::SalesRevenue => "sales_revenue",
            Role::TaxPayable => "tax_payable",
            Role::ShippingRevenue => "shipping_revenue",
            Role::CostOfGoodsSold => "cost_of_goods_sold",
            Role::SupplierPayable => "supplier_payable",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub code: String,
    pub name: String,
    pub account_type: String,
    pub normal_side: Side,
    pub role: Option<Role>,
}

/// A validated chart: unique codes, and every role on exactly one account.
#[derive(Debug, Clone)]
pub struct Chart {
    accounts: Vec<Account>,
    by_role: BTreeMap<Role, usize>,
}

/// Why a chart file cannot be used, naming the file and line.
#[derive(Debug, thiserror::Error)]
#[error("chart of accounts {origin}, line {line}: {reason}")]
pub struct ChartError {
    pub origin: String,
    pub line: usize,
    pub reason: String,
}

impl Chart {
    /// Parses a chart; `origin` names it in errors (a path, or "built-in").
    pub fn parse(text: &str, origin: &str) -> Result<Self, ChartError> {
        let err = |line: usize, reason: String| ChartError {
            origin: origin.to_string(),
            line,
            reason,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (n, header) = lines.next().ok_or_else(|| err(1, "no header".into()))?;
        let header = csv::parse_record(header).map_err(|e| err(n, e))?;
        if header != HEADER {
            return Err(err(n, format!("the header must be {}", HEADER.join(","))));
        }
        let mut accounts: Vec<Account> = Vec::new();
        let mut by_role = BTreeMap::new();
        let mut codes = BTreeSet::new();
        for (n, line) in lines {
            let fields = csv::parse_record(line).map_err(|e| err(n, e))?;
            let [code, name, account_type, side, role]: [String; 5] =
                fields.try_into().map_err(|f: Vec<String>| {
                    err(n, format!("expected 5 fields, found {}", f.len()))
                })?;
            let (code, name) = (code.trim().to_string(), name.trim().to_string());
            if code.is_empty() || name.is_empty() {
                return Err(err(n, "code and name must not be empty".into()));
            }
            if !codes.insert(code.clone()) {
                return Err(err(n, format!("account {code} appears twice")));
            }
            if !TYPES.contains(&account_type.as_str()) {
                return Err(err(
                    n,
                    format!("type {account_type:?} is not one of {}", TYPES.join(", ")),
                ));
            }
            let normal_side = match side.as_str() {
                "debit" => Side::Debit,
                "credit" => Side::Credit,
                other => {
                    return Err(err(
                        n,
                        format!("normal_side {other:?} is not debit or credit"),
                    ))
                }
            };
            let role = match role.trim() {
                "" => None,
                r => Some(Role::parse(r).ok_or_else(|| {
                    let known: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                    err(n, format!("role {r:?} is not one of {}", known.join(", ")))
                })?),
            };
            if let Some(role) = role {
                if by_role.insert(role, accounts.len()).is_some() {
                    return Err(err(n, format!("role {} is on two accounts", role.as_str())));
                }
            }
            accounts.push(Account {
                code,
                name,
                account_type,
                normal_side,
                role,
            });
        }
        let missing: Vec<_> = Role::ALL
            .iter()
            .filter(|r| !by_role.contains_key(r))
            .map(|r| r.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(err(
                text.lines().count(),
                format!("no account has the role {}", missing.join(", ")),
            ));
        }
        Ok(Self { accounts, by_role })
    }

    /// The account playing `role`; every role has one in a parsed chart.
    pub fn account(&self, role: Role) -> &Account {
        &self.accounts[self.by_role[&role]]
    }

    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// Upserts the accounts into `accounts`. Accounts missing from the file stay (postings refer
    /// to them) but lose their role, so a role can move to another account.
    pub async fn install(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE accounts SET role = NULL WHERE role IS NOT NULL")
            .execute(&mut *tx)
            .await?;
        for a in &self.accounts {
            sqlx::query(
                "INSERT INTO accounts (code, name, type, normal_side, role)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
                     normal_side = EXCLUDED.normal_side, role = EXCLUDED.role",
            )
            .bind(&a.code)
            .bind(&a.name)
            .bind(&a.account_type)
            .bind(a.normal_side.as_str())
            .bind(a.role.map(Role::as_str))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_chart_gives_every_role_an_account() {
        let chart = Chart::parse(DEFAULT_CHART, "built-in").unwrap();
        assert_eq!(chart.account(Role::Receivable).code, "1200");
        assert_eq!(chart.account(Role::SupplierPayable).code, "2000");
        assert!(chart.accounts().iter().any(|a| a.role.is_none()));
    }

    #[test]
    fn names_may_hold_commas_and_mistakes_name_the_line() {
        let roles = "1,R,asset,debit,receivable\n2,S,revenue,credit,sales_revenue\n\
                     3,T,liability,credit,tax_payable\n4,Sh,revenue,credit,shipping_revenue\n\
                     5,C,expense,debit,cost_of_goods_sold\n";
        let good = format!("code,name,type,normal_side,role\n{roles}6,\"Payable, EU\",liability,credit,supplier_payable\n");
        let chart = Chart::parse(&good, "f.csv").unwrap();
        assert_eq!(chart.account(Role::SupplierPayable).name, "Payable, EU");

        let missing = format!("code,name,type,normal_side,role\n{roles}");
        let e = Chart::parse(&missing, "f.csv").unwrap_err().to_string();
        assert!(
            e.contains("no account has the role supplier_payable"),
            "{e}"
        );

        let twice =
            format!("code,name,type,normal_side,role\n{roles}6,P,liability,credit,receivable\n");
        let e = Chart::parse(&twice, "f.csv").unwrap_err().to_string();
        assert_eq!(
            e,
            "chart of accounts f.csv, line 7: role receivable is on two accounts"
        );

        let bad_type = "code,name,type,normal_side,role\n1,R,income,debit,\n";
        let e = Chart::parse(bad_type, "f.csv").unwrap_err().to_string();
        assert!(e.contains("line 2: type \"income\""), "{e}");
    }
}
