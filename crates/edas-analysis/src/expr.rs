//! The success conditions' language: small and safe on purpose (no eval, no shell, no loops,
//! no strings), so a policy can be written by anyone allowed to set it and still never run
//! code. Numbers, `true`/`false`, the check's variables (`result`, and per provider
//! `baseline`, `requests`, `baselineRequests`), `+ - * /`, `< <= > >= == !=`, `&& || !`,
//! parentheses and `abs(x)`, `min(x, y)`, `max(x, y)`.
//!
//! An expression is parsed and type-checked once, when its policy is validated, so unknown
//! variables or functions and type mistakes (`result && 1`) are refused then, with their
//! position; evaluation can then only fail on arithmetic (division by zero, a value that is
//! not a finite number, a variable the provider did not give), which the judge counts as
//! inconclusive, never as a pass.

use std::fmt;

/// Longest condition accepted (bytes): a condition is one line a human reads.
pub const MAX_LEN: usize = 1024;
/// Deepest nesting accepted, so a hostile `((((…` cannot exhaust the stack.
const MAX_DEPTH: usize = 48;

/// A condition that does not parse or type-check: where (a 1-based character column) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// Why a parsed condition could not be decided for one measurement (inconclusive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("division by zero")]
    DivisionByZero,
    #[error("{0} is not a finite number")]
    NotFinite(String),
    #[error("no value for '{0}'")]
    Missing(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Abs,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Bool(bool),
    Var(String),
    Neg(Box<Node>),
    Not(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

/// A parsed, type-checked condition (its value is a boolean). Kept with its source, which is
/// what policies store and reasons quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "number {n}"),
            Tok::Ident(s) => write!(f, "'{s}'"),
            Tok::Op(o) => write!(f, "'{o}'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::End => f.write_str("the end"),
        }
    }
}

fn err(column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column,
        message: message.into(),
    }
}

/// Tokens with their 1-based character column.
fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                let mut j = i + 1;
                if j < chars.len() && matches!(chars[j], '+' | '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text
                .parse()
                .map_err(|_| err(col, format!("'{text}' is not a number")))?;
            if !n.is_finite() {
                return Err(err(col, format!("'{text}' is too large")));
            }
            out.push((Tok::Num(n), col));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), col));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["<=", ">=", "==", "!=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            out.push((Tok::Op(op), col));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '!' => Tok::Op("!"),
            '=' => return Err(err(col, "'=' is not an operator; compare with '=='")),
            '&' => return Err(err(col, "'&' is not an operator; use '&&'")),
            '|' => return Err(err(col, "'|' is not an operator; use '||'")),
            other => return Err(err(col, format!("unexpected character {other:?}"))),
        };
        out.push((tok, col));
        i += 1;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vars: &'a [&'a str],
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn column(&self) -> usize {
        self.toks[self.pos].1
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn eat_op(&mut self, ops: &[&'static str]) -> Option<(&'static str, usize)> {
        if let Tok::Op(o) = self.peek()
            && ops.contains(o)
        {
            let o = *o;
            let col = self.column();
            self.next();
            return Some((o, col));
        }
        None
    }

    fn expect(ty: Ty, want: Ty, col: usize, what: &str) -> Result<(), ParseError> {
        if ty == want {
            Ok(())
        } else {
            Err(err(col, format!("{what} needs {want}, not {ty}")))
        }
    }

    fn or(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, lt) = self.and()?;
        let mut lty = lt;
        while let Some((_, col)) = self.eat_op(&["||"]) {
            let (r, rt) = self.and()?;
            Self::expect(lty, Ty::Bool, col, "'||'")?;
            Self::expect(rt, Ty::Bool, col, "'||'")?;
            l = Node::Bin(BinOp::Or, Box::new(l), Box::new(r));
            lty = Ty::Bool;
        }
        Ok((l, lty))
    }

    fn and(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, mut lty) = self.equality()?;
        while let Some((_, col)) = self.eat_op(&["&&"]) {
            let (r, rt) = self.equality()?;
            Self::expect(lty, Ty::Bool, col, "'&&'")?;
            Self::expect(rt, Ty::Bool, col, "'&&'")?;
            l = Node::Bin(BinOp::And, Box::new(l), Box::new(r));
            lty = Ty::Bool;
        }
        Ok((l, lty))
    }

    fn equality(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, mut lty) = self.comparison()?;
        while let Some((op, col)) = self.eat_op(&["==", "!="]) {
            let (r, rt) = self.comparison()?;
            if lty != rt {
                return Err(err(
                    col,
                    format!("'{op}' compares {lty} with {rt}; both sides must be alike"),
                ));
            }
            let op = if op == "==" { BinOp::Eq } else { BinOp::Ne };
            l = Node::Bin(op, Box::new(l), Box::new(r));
            lty = Ty::Bool;
        }
        Ok((l, lty))
    }

    fn comparison(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, mut lty) = self.sum()?;
        while let Some((op, col)) = self.eat_op(&["<", "<=", ">", ">="]) {
            let (r, rt) = self.sum()?;
            let what = format!("'{op}'");
            Self::expect(lty, Ty::Num, col, &what)?;
            Self::expect(rt, Ty::Num, col, &what)?;
            let op = match op {
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                _ => BinOp::Ge,
            };
            l = Node::Bin(op, Box::new(l), Box::new(r));
            lty = Ty::Bool;
        }
        Ok((l, lty))
    }

    fn sum(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, lty) = self.product()?;
        while let Some((op, col)) = self.eat_op(&["+", "-"]) {
            let (r, rt) = self.product()?;
            let what = format!("'{op}'");
            Self::expect(lty, Ty::Num, col, &what)?;
            Self::expect(rt, Ty::Num, col, &what)?;
            let op = if op == "+" { BinOp::Add } else { BinOp::Sub };
            l = Node::Bin(op, Box::new(l), Box::new(r));
        }
        Ok((l, lty))
    }

    fn product(&mut self) -> Result<(Node, Ty), ParseError> {
        let (mut l, lty) = self.unary()?;
        while let Some((op, col)) = self.eat_op(&["*", "/"]) {
            let (r, rt) = self.unary()?;
            let what = format!("'{op}'");
            Self::expect(lty, Ty::Num, col, &what)?;
            Self::expect(rt, Ty::Num, col, &what)?;
            let op = if op == "*" { BinOp::Mul } else { BinOp::Div };
            l = Node::Bin(op, Box::new(l), Box::new(r));
        }
        Ok((l, lty))
    }

    fn unary(&mut self) -> Result<(Node, Ty), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.column(), "nested too deeply"));
        }
        let out = if let Some((op, col)) = self.eat_op(&["!", "-"]) {
            let (n, t) = self.unary()?;
            if op == "!" {
                Self::expect(t, Ty::Bool, col, "'!'")?;
                (Node::Not(Box::new(n)), Ty::Bool)
            } else {
                Self::expect(t, Ty::Num, col, "'-'")?;
                (Node::Neg(Box::new(n)), Ty::Num)
            }
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(out)
    }

    fn primary(&mut self) -> Result<(Node, Ty), ParseError> {
        let (tok, col) = self.next();
        match tok {
            Tok::Num(n) => Ok((Node::Num(n), Ty::Num)),
            Tok::LParen => {
                let inner = self.or()?;
                match self.next() {
                    (Tok::RParen, _) => Ok(inner),
                    (t, c) => Err(err(c, format!("expected ')', found {t}"))),
                }
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok((Node::Bool(true), Ty::Bool)),
                "false" => Ok((Node::Bool(false), Ty::Bool)),
                _ if *self.peek() == Tok::LParen => self.call(&name, col),
                _ if self.vars.contains(&name.as_str()) => Ok((Node::Var(name), Ty::Num)),
                _ => Err(err(
                    col,
                    format!(
                        "unknown variable '{name}' (this check has {})",
                        self.vars.join(", ")
                    ),
                )),
            },
            other => Err(err(col, format!("expected a value, found {other}"))),
        }
    }

    fn call(&mut self, name: &str, col: usize) -> Result<(Node, Ty), ParseError> {
        let (func, arity) = match name {
            "abs" => (Func::Abs, 1),
            "min" => (Func::Min, 2),
            "max" => (Func::Max, 2),
            _ => {
                return Err(err(
                    col,
                    format!("unknown function '{name}' (there are abs, min and max)"),
                ));
            }
        };
        self.next(); // '('
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                let acol = self.column();
                let (a, t) = self.or()?;
                Self::expect(t, Ty::Num, acol, &format!("{name}()"))?;
                args.push(a);
                if *self.peek() == Tok::Comma {
                    self.next();
                } else {
                    break;
                }
            }
        }
        match self.next() {
            (Tok::RParen, _) => {}
            (t, c) => return Err(err(c, format!("expected ')' or ',', found {t}"))),
        }
        if args.len() != arity {
            return Err(err(
                col,
                format!("{name}() takes {arity} argument(s), not {}", args.len()),
            ));
        }
        Ok((Node::Call(func, args), Ty::Num))
    }
}

impl Expr {
    /// Parses and type-checks a condition that may use only `vars`; its value must be a
    /// boolean.
    pub fn parse(source: &str, vars: &[&str]) -> Result<Expr, ParseError> {
        if source.len() > MAX_LEN {
            return Err(err(1, format!("longer than {MAX_LEN} bytes")));
        }
        if source.trim().is_empty() {
            return Err(err(1, "empty condition"));
        }
        let mut p = Parser {
            toks: lex(source)?,
            pos: 0,
            vars,
            depth: 0,
        };
        let (root, ty) = p.or()?;
        if *p.peek() != Tok::End {
            return Err(err(
                p.column(),
                format!("unexpected {} after the condition", p.peek()),
            ));
        }
        if ty != Ty::Bool {
            return Err(err(
                1,
                "the condition is a number, not true/false (compare it, e.g. 'result < 0.05')",
            ));
        }
        Ok(Expr {
            source: source.to_owned(),
            root,
        })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Decides the condition with the variables' values (`lookup` answers a name it was
    /// parsed with, or `None` when this measurement has no such value).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<f64>) -> Result<bool, EvalError> {
        match eval(&self.root, lookup)? {
            Val::Bool(b) => Ok(b),
            // Type-checked at parse: the root is boolean.
            Val::Num(_) => Err(EvalError::NotFinite("the condition".into())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Val {
    Num(f64),
    Bool(bool),
}

fn num(v: Val) -> f64 {
    match v {
        Val::Num(n) => n,
        Val::Bool(b) => f64::from(u8::from(b)),
    }
}

fn finite(n: f64, what: &str) -> Result<f64, EvalError> {
    if n.is_finite() {
        Ok(n)
    } else {
        Err(EvalError::NotFinite(what.to_owned()))
    }
}

fn eval(node: &Node, lookup: &dyn Fn(&str) -> Option<f64>) -> Result<Val, EvalError> {
    Ok(match node {
        Node::Num(n) => Val::Num(*n),
        Node::Bool(b) => Val::Bool(*b),
        Node::Var(name) => {
            let v = lookup(name).ok_or_else(|| EvalError::Missing(name.clone()))?;
            Val::Num(finite(v, name)?)
        }
        Node::Neg(n) => Val::Num(-num(eval(n, lookup)?)),
        Node::Not(n) => Val::Bool(!matches!(eval(n, lookup)?, Val::Bool(true))),
        Node::Bin(BinOp::And, l, r) => Val::Bool(
            matches!(eval(l, lookup)?, Val::Bool(true))
                && matches!(eval(r, lookup)?, Val::Bool(true)),
        ),
        Node::Bin(BinOp::Or, l, r) => Val::Bool(
            matches!(eval(l, lookup)?, Val::Bool(true))
                || matches!(eval(r, lookup)?, Val::Bool(true)),
        ),
        Node::Bin(op, l, r) => {
            let (lv, rv) = (eval(l, lookup)?, eval(r, lookup)?);
            if let (Val::Bool(a), Val::Bool(b)) = (lv, rv) {
                return Ok(Val::Bool(match op {
                    BinOp::Eq => a == b,
                    _ => a != b,
                }));
            }
            let (a, b) = (num(lv), num(rv));
            match op {
                BinOp::Add => Val::Num(finite(a + b, "a sum")?),
                BinOp::Sub => Val::Num(finite(a - b, "a difference")?),
                BinOp::Mul => Val::Num(finite(a * b, "a product")?),
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(EvalError::DivisionByZero);
                    }
                    Val::Num(finite(a / b, "a quotient")?)
                }
                BinOp::Lt => Val::Bool(a < b),
                BinOp::Le => Val::Bool(a <= b),
                BinOp::Gt => Val::Bool(a > b),
                BinOp::Ge => Val::Bool(a >= b),
                BinOp::Eq => Val::Bool(a == b),
                BinOp::Ne => Val::Bool(a != b),
                // Matched by the arms above; false keeps the match total without a panic.
                BinOp::And | BinOp::Or => Val::Bool(false),
            }
        }
        Node::Call(f, args) => {
            let mut xs = Vec::with_capacity(args.len());
            for a in args {
                xs.push(num(eval(a, lookup)?));
            }
            match (f, xs.as_slice()) {
                (Func::Abs, [x]) => Val::Num(x.abs()),
                (Func::Min, [x, y]) => Val::Num(x.min(*y)),
                (Func::Max, [x, y]) => Val::Num(x.max(*y)),
                // Arity is checked at parse.
                _ => return Err(EvalError::Missing("an argument".into())),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VARS: &[&str] = &["result", "baseline"];

    fn run(src: &str, result: f64, baseline: Option<f64>) -> Result<bool, EvalError> {
        let e = Expr::parse(src, VARS).unwrap();
        e.eval(&|n| match n {
            "result" => Some(result),
            "baseline" => baseline,
            _ => None,
        })
    }

    #[test]
    fn evaluates_conditions() {
        assert_eq!(run("result < 0.05", 0.01, None), Ok(true));
        assert_eq!(run("result < 0.05", 0.21, None), Ok(false));
        assert_eq!(
            run("result >= baseline - 0.01", 0.99, Some(0.995)),
            Ok(true)
        );
        assert_eq!(
            run("result <= baseline * 1.2 + 50", 300.0, Some(100.0)),
            Ok(false)
        );
        assert_eq!(
            run("!(result > 1) && (result == 1 || true)", 1.0, None),
            Ok(true)
        );
        assert_eq!(
            run("abs(result - baseline) < 0.1", 0.5, Some(0.45)),
            Ok(true)
        );
        assert_eq!(
            run("min(result, 3) == 3 && max(result, 3) == 5", 5.0, None),
            Ok(true)
        );
        assert_eq!(run("-result < -1e-3", 0.5, None), Ok(true));
        assert_eq!(run("1 + 2 * 3 == 7", 0.0, None), Ok(true));
        assert_eq!(run("(1 + 2) * 3 == 9", 0.0, None), Ok(true));
        assert_eq!(run("true != false", 0.0, None), Ok(true));
    }

    #[test]
    fn arithmetic_failures_are_errors_not_answers() {
        assert_eq!(
            run("result / 0 > 1", 1.0, None),
            Err(EvalError::DivisionByZero)
        );
        assert_eq!(
            run("result > 1", f64::NAN, None),
            Err(EvalError::NotFinite("result".into()))
        );
        assert_eq!(
            run("result > baseline", 1.0, None),
            Err(EvalError::Missing("baseline".into()))
        );
        assert!(matches!(
            run("result * 1e308 * 10 > 1", 10.0, None),
            Err(EvalError::NotFinite(_))
        ));
    }

    #[test]
    fn mistakes_are_refused_with_their_position() {
        let e = |s: &str| Expr::parse(s, VARS).unwrap_err();
        assert_eq!(
            e("rezult < 1"),
            err(
                1,
                "unknown variable 'rezult' (this check has result, baseline)"
            )
        );
        assert_eq!(e("result < 1 && requests > 2").column, 15);
        assert_eq!(
            e("exp(result) > 1").message,
            "unknown function 'exp' (there are abs, min and max)"
        );
        assert_eq!(e("result + 1").column, 1);
        assert!(e("result + 1").message.contains("not true/false"));
        assert_eq!(
            e("result && true").message,
            "'&&' needs a boolean, not a number"
        );
        assert_eq!(
            e("result = 1").message,
            "'=' is not an operator; compare with '=='"
        );
        assert_eq!(e("(result < 1").message, "expected ')', found the end");
        assert_eq!(e("result < 1)").column, 11);
        assert_eq!(e("result == true").column, 8);
        assert_eq!(
            e("min(result) < 1").message,
            "min() takes 2 argument(s), not 1"
        );
        assert_eq!(e("result < 1e999").message, "'1e999' is too large");
        assert_eq!(e("result < $x").message, "unexpected character '$'");
        assert_eq!(e("  ").message, "empty condition");
        let deep = format!("{}result < 1{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(e(&deep).message, "nested too deeply");
        let many_not = format!("{}true", "!".repeat(10_000));
        assert!(Expr::parse(&many_not, VARS).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            if let Ok(e) = Expr::parse(&s, VARS) {
                let _ = e.eval(&|_| Some(1.0));
            }
        }

        #[test]
        fn operator_soup_never_panics(s in "[()!<>=&|+*/ ,.0-9a-z-]{0,120}") {
            if let Ok(e) = Expr::parse(&s, VARS) {
                let _ = e.eval(&|_| Some(0.0));
                let _ = e.eval(&|_| None);
            }
        }

        #[test]
        fn comparisons_agree_with_rust(a in -1e6f64..1e6, b in -1e6f64..1e6) {
            let e = Expr::parse("result < baseline", VARS).unwrap();
            let got = e.eval(&|n| if n == "result" { Some(a) } else { Some(b) });
            prop_assert_eq!(got, Ok(a < b));
        }
    }
}
