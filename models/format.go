package models

import (
	"fmt"
	"strings"
)

// zeroDecimal lists currencies whose minor unit is the major unit.
var zeroDecimal = map[Currency]bool{"jpy": true, "krw": true, "vnd": true, "clp": true, "isk": true, "ugx": true, "xaf": true, "xof": true}

// FormatAmount renders minor units for people, in integer arithmetic:
// 123456 usd -> "1234.56 USD".
func FormatAmount(amount int64, c Currency) string {
	code := strings.ToUpper(string(c))
	if zeroDecimal[c] {
		return fmt.Sprintf("%d %s", amount, code)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, code)
}
