package workflows

import "github.com/billflow/billflow/models"

// FormatAmount renders minor units for people (see models.FormatAmount).
func FormatAmount(amount int64, c models.Currency) string { return models.FormatAmount(amount, c) }
