package models

import (
	"slices"
	"strconv"
	"strings"
)

// minorUnits is the one table of ISO 4217 minor-unit exponents billflow
// knows: how many decimal digits a currency's minor unit has (usd 2: 1 is
// a cent; jpy 0: 1 is a yen; kwd 3: 1 is a fils). Formatting, the Lightning
// rate source (fiat -> msat) and every message amount read it through
// MinorUnits, and the database accepts exactly these codes (migration
// 00008's billflow_currency_supported, checked against this table by a test).
//
// It holds the currencies in circulation in ISO 4217 list one; fund codes
// (bov, che, chw, clf, cou, mxv, usn, uyi, uyw), precious metals (xau, xag,
// xpd, xpt), xdr, xsu, xua and the test/no-currency codes (xts, xxx) are
// left out on purpose: nobody is billed in them. Exponents are ISO's, not a
// processor's: isk, ugx and huf follow ISO even where a card processor
// rounds differently. Adding a currency means adding it here and to the
// database check in a new migration.
var minorUnits = map[Currency]int{
	// Zero decimals: the minor unit is the major unit.
	"bif": 0, "clp": 0, "djf": 0, "gnf": 0, "isk": 0, "jpy": 0, "kmf": 0, "krw": 0,
	"pyg": 0, "rwf": 0, "ugx": 0, "vnd": 0, "vuv": 0, "xaf": 0, "xof": 0, "xpf": 0,
	// Three decimals.
	"bhd": 3, "iqd": 3, "jod": 3, "kwd": 3, "lyd": 3, "omr": 3, "tnd": 3,
	// Two decimals.
	"aed": 2, "afn": 2, "all": 2, "amd": 2, "ang": 2, "aoa": 2, "ars": 2, "aud": 2,
	"awg": 2, "azn": 2, "bam": 2, "bbd": 2, "bdt": 2, "bgn": 2, "bmd": 2, "bnd": 2,
	"bob": 2, "brl": 2, "bsd": 2, "btn": 2, "bwp": 2, "byn": 2, "bzd": 2, "cad": 2,
	"cdf": 2, "chf": 2, "cny": 2, "cop": 2, "crc": 2, "cup": 2, "cve": 2, "czk": 2,
	"dkk": 2, "dop": 2, "dzd": 2, "egp": 2, "ern": 2, "etb": 2, "eur": 2, "fjd": 2,
	"fkp": 2, "gbp": 2, "gel": 2, "ghs": 2, "gip": 2, "gmd": 2, "gtq": 2, "gyd": 2,
	"hkd": 2, "hnl": 2, "htg": 2, "huf": 2, "idr": 2, "ils": 2, "inr": 2, "irr": 2,
	"jmd": 2, "kes": 2, "kgs": 2, "khr": 2, "kpw": 2, "kyd": 2, "kzt": 2, "lak": 2,
	"lbp": 2, "lkr": 2, "lrd": 2, "lsl": 2, "mad": 2, "mdl": 2, "mga": 2, "mkd": 2,
	"mmk": 2, "mnt": 2, "mop": 2, "mru": 2, "mur": 2, "mvr": 2, "mwk": 2, "mxn": 2,
	"myr": 2, "mzn": 2, "nad": 2, "ngn": 2, "nio": 2, "nok": 2, "npr": 2, "nzd": 2,
	"pab": 2, "pen": 2, "pgk": 2, "php": 2, "pkr": 2, "pln": 2, "qar": 2, "ron": 2,
	"rsd": 2, "rub": 2, "sar": 2, "sbd": 2, "scr": 2, "sdg": 2, "sek": 2, "sgd": 2,
	"shp": 2, "sle": 2, "sos": 2, "srd": 2, "ssp": 2, "stn": 2, "svc": 2, "syp": 2,
	"szl": 2, "thb": 2, "tjs": 2, "tmt": 2, "top": 2, "try": 2, "ttd": 2, "twd": 2,
	"tzs": 2, "uah": 2, "usd": 2, "uyu": 2, "uzs": 2, "ved": 2, "ves": 2, "wst": 2,
	"xcd": 2, "xcg": 2, "yer": 2, "zar": 2, "zmw": 2, "zwg": 2,
}

// MinorUnits returns the ISO 4217 minor-unit exponent of a supported
// currency (2 for usd, 0 for jpy, 3 for kwd); ok is false for any other code.
func MinorUnits(c Currency) (exp int, ok bool) {
	exp, ok = minorUnits[c]
	return exp, ok
}

// MinorPerMajor returns 10^MinorUnits(c): how many minor units make one
// major unit (100 for usd, 1 for jpy, 1000 for kwd).
func MinorPerMajor(c Currency) (int64, bool) {
	exp, ok := minorUnits[c]
	if !ok {
		return 0, false
	}
	n := int64(1)
	for range exp {
		n *= 10
	}
	return n, true
}

// Currencies lists every supported currency, sorted.
func Currencies() []Currency {
	out := make([]Currency, 0, len(minorUnits))
	for c := range minorUnits {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// ParseCurrency normalises a currency code (trimmed, lower case) and checks
// that it is one billflow supports: a code whose minor-unit exponent is
// unknown cannot be formatted or converted, so it is refused up front.
func ParseCurrency(s string) (Currency, error) {
	c := strings.ToLower(strings.TrimSpace(s))
	if !currencyPattern.MatchString(c) {
		return "", invalid("currency", "%q is not a three-letter ISO 4217 code", s)
	}
	if _, ok := minorUnits[Currency(c)]; !ok {
		return "", invalid("currency", "%q is not an ISO 4217 currency billflow supports", s)
	}
	return Currency(c), nil
}

// FormatAmount renders minor units for people, in integer arithmetic, with
// the currency's ISO 4217 exponent: 123456 usd -> "1234.56 USD", 1234 jpy ->
// "1234 JPY", 1234 kwd -> "1.234 KWD". An unsupported code (which
// ParseCurrency never lets in) is shown as a bare count of minor units.
func FormatAmount(amount int64, c Currency) string {
	code := strings.ToUpper(string(c))
	exp, ok := minorUnits[c]
	if !ok {
		return strconv.FormatInt(amount, 10) + " " + code + " minor units"
	}
	if exp == 0 {
		return strconv.FormatInt(amount, 10) + " " + code
	}
	sign := ""
	// Work on the magnitude as uint64 so math.MinInt64 does not wrap.
	mag := uint64(amount)
	if amount < 0 {
		sign, mag = "-", uint64(-(amount+1))+1
	}
	div := uint64(1)
	for range exp {
		div *= 10
	}
	frac := strconv.FormatUint(mag%div, 10)
	for len(frac) < exp {
		frac = "0" + frac
	}
	return sign + strconv.FormatUint(mag/div, 10) + "." + frac + " " + code
}
