package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/payersign"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The usage commands drive metered usage sessions (issue 10), each a
// UsageSession workflow usage/<session-id>, through package billing. A
// session's refusal prints its code and exits exitUsageRefused.

func (a *app) usageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Start, report, sign, end and show metered usage sessions",
		Long: "A usage session bills a metered service (seconds or bytes) while it serves: the engine issues receipts that the payer co-signs " +
			"and pays each from the payer's wallet. A refused request prints `error: <CODE>: <reason>` and exits 4.",
	}
	cmd.AddCommand(a.usageStart(), a.usageReport(), a.usageSign(), a.usageEnd(), a.usageShow(), a.usageStats(), a.usageUnban())
	return cmd
}

func (a *app) usageStart() *cobra.Command {
	var (
		session, service, payer string
		maxPrice                int64
		notifyDM, asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "start --service ID --payer PUBKEY --max-unit-price N [--session ID] [--notify-dm]",
		Short: "Start a usage session (or reach the running one with the same --session)",
		Long: "Starts workflow usage/<session> (update-with-start): it answers the mode the session started in — FREE, NORMAL (remain service " +
			"from an earlier session), IDLE waiting for the first receipt's signature, or GRACE (not enough funds: service starts, a top-up is asked for). " +
			"--max-unit-price is the highest price per the service's units the client accepts. Without --session a fresh id is generated and printed; " +
			"an ended session's id is not started again.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "service", "payer", "max-unit-price"); err != nil {
				return err
			}
			if session == "" {
				session = "cli-" + newID()
			}
			if err := billing.ValidUsageSessionID(session); err != nil {
				return err
			}
			if _, err := models.ParseTenantID(payer); err != nil {
				return &billing.ValidationError{Field: "--payer", Reason: fmt.Sprintf("%q is not a Nostr public key (64 hex characters or npub1...)", payer)}
			}
			if maxPrice < 0 {
				return &billing.ValidationError{Field: "--max-unit-price", Reason: fmt.Sprintf("%d is negative", maxPrice)}
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			res, err := bc.StartUsage(cmd.Context(), billing.UsageStartRequest{SessionID: session, ServiceID: service,
				Payer: models.TenantID(payer), MaxUnitPrice: maxPrice, NotifyDM: notifyDM})
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(struct {
					SessionID string `json:"session_id"`
					billing.UsageStartResult
				}{session, res})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "session\t%s\n", session)
			fmt.Fprintf(w, "state\t%s\n", stateName(res.State, res.SubState))
			if res.RemainUnits > 0 {
				fmt.Fprintf(w, "remain units\t%d (from an earlier session, used first)\n", res.RemainUnits)
			}
			if res.Receipt != nil {
				printWaiting(w, *res.Receipt)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&session, "session", "", "session id (default: generated)")
	cmd.Flags().StringVar(&service, "service", "", "the catalog service's id")
	cmd.Flags().StringVar(&payer, "payer", "", "the payer's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&maxPrice, "max-unit-price", 0, "highest price per the service's units accepted (minor units)")
	cmd.Flags().BoolVar(&notifyDM, "notify-dm", false, "also send sign requests to the payer as NIP-17 DMs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) usageReport() *cobra.Command {
	var (
		session, id             string
		seconds, received, sent int64
		asJSON                  bool
	)
	cmd := &cobra.Command{
		Use:   "report --session ID [--seconds N] [--bytes-received N] [--bytes-sent N] [--id R]",
		Short: "Report usage since the last report",
		Long: "Signals the session the seconds of service and bytes received and sent since the last report. --id makes the report " +
			"idempotent (the same id again is counted once); without it a fresh id is generated and printed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "session"); err != nil {
				return err
			}
			if !cmd.Flags().Changed("seconds") && !cmd.Flags().Changed("bytes-received") && !cmd.Flags().Changed("bytes-sent") {
				return usagef("give at least one of --seconds, --bytes-received and --bytes-sent (see %s --help)", cmd.CommandPath())
			}
			if id == "" {
				id = "cli-" + newID()
			}
			r := billing.UsageReport{ID: id, Seconds: seconds, BytesReceived: received, BytesSent: sent}
			if err := billing.ValidUsageSessionID(session); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				n    int64
			}{{"--seconds", seconds}, {"--bytes-received", received}, {"--bytes-sent", sent}} {
				if f.n < 0 {
					return &billing.ValidationError{Field: f.name, Reason: fmt.Sprintf("%d is negative", f.n)}
				}
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			if err := bc.ReportUsage(cmd.Context(), session, r); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(r)
			}
			_, err = fmt.Fprintf(a.stdout, "reported %s to session %s: %d s, %d bytes received, %d bytes sent\n", id, session, seconds, received, sent)
			return err
		},
	}
	cmd.Flags().StringVar(&session, "session", "", "session id")
	cmd.Flags().StringVar(&id, "id", "", "report id, its idempotency key (default: generated)")
	cmd.Flags().Int64Var(&seconds, "seconds", 0, "seconds of service since the last report")
	cmd.Flags().Int64Var(&received, "bytes-received", 0, "bytes received since the last report")
	cmd.Flags().Int64Var(&sent, "bytes-sent", 0, "bytes sent since the last report")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) usageSign() *cobra.Command {
	var (
		session, event, key string
		asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "sign --session ID (--event JSON | --key KEY)",
		Short: "Co-sign the receipt the session waits for, as the payer",
		Long: "Delivers the payer's signature over the receipt the session is waiting for.\n\n" +
			"--event is the payer's signed Nostr event (JSON; @FILE reads a file, - standard input).\n" +
			"--key is the payer's secret key (64 hex digits or nsec1...; - reads it from standard input, which keeps it off the command line): " +
			"the command reads the waiting receipt from the session and signs the payer's event itself: kind " + fmt.Sprint(payersign.EventKind) +
			", tags [[\"e\", <engine's event id>], [\"r\", <receipt id>]], content the receipt id.\n\n" +
			"A refused signature (RECEIPT_CANT_FIND, RECEIPT_WRONG_PKEY_HASH, RECEIPT_BAD_SIGNATURE, RECEIPT_BAD_VERSION) exits 4; the session keeps waiting.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "session"); err != nil {
				return err
			}
			if (event == "") == (key == "") {
				return usagef("give exactly one of --event and --key (see %s --help)", cmd.CommandPath())
			}
			if event == "-" && key == "-" {
				return usagef("only one of --event and --key can read standard input")
			}
			var ev billing.NostrEvent
			var sk string
			if event != "" {
				var err error
				if ev, err = readEvent(cmd.InOrStdin(), event); err != nil {
					return err
				}
				if err := billing.ValidNostrEvent(ev); err != nil {
					return err
				}
			} else {
				var err error
				if sk, err = readKey(cmd.InOrStdin(), key); err != nil {
					return err
				}
			}
			if err := billing.ValidUsageSessionID(session); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			if sk != "" {
				v, err := bc.UsageSession(cmd.Context(), session)
				if err != nil {
					return err
				}
				if v.Waiting == nil {
					return &billing.UsageError{Code: models.UsageWrongState, Message: fmt.Sprintf("session %s waits for no receipt signature (state %s)", session, stateName(v.State, v.SubState))}
				}
				if ev, err = payersign.Sign(sk, *v.Waiting, time.Now()); err != nil {
					return err
				}
			}
			v, err := bc.SignReceipt(cmd.Context(), session, ev)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(v)
			}
			_, err = fmt.Fprintf(a.stdout, "receipt %s signed by %s; session %s is %s, %d receipts signed\n", payersign.ReceiptID(ev), ev.PubKey,
				session, stateName(v.State, v.SubState), v.ReceiptsSigned)
			return err
		},
	}
	cmd.Flags().StringVar(&session, "session", "", "session id")
	cmd.Flags().StringVar(&event, "event", "", "the payer's signed event: JSON, @FILE, or - (standard input)")
	cmd.Flags().StringVar(&key, "key", "", "the payer's secret key (hex or nsec), or - to read it from standard input")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the session after the signature)")
	return cmd
}

// readEvent reads --event: inline JSON, @FILE or - (stdin).
func readEvent(stdin io.Reader, arg string) (billing.NostrEvent, error) {
	var ev billing.NostrEvent
	data := []byte(arg)
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return ev, usagef("read --event from standard input: %v", err)
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return ev, usagef("read --event: %v", err)
		}
		data = b
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, &billing.ValidationError{Field: "--event", Reason: "not a Nostr event's JSON: " + err.Error()}
	}
	return ev, nil
}

// readKey reads --key, from stdin when it is "-". The error never repeats the key.
func readKey(stdin io.Reader, arg string) (string, error) {
	if arg == "-" {
		sc := bufio.NewScanner(io.LimitReader(stdin, 4<<10))
		arg = ""
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				arg = line
				break
			}
		}
	}
	sk, err := payersign.ParseSecretKey(arg)
	if err != nil {
		return "", &billing.ValidationError{Field: "--key", Reason: err.Error()}
	}
	return sk, nil
}

func (a *app) usageEnd() *cobra.Command {
	return a.usageSessionCommand("end --session ID", "End a usage session: final usage valued, unused units kept as remain service",
		"Ends the session and prints its final state. Report the last usage first (usage report); ending an ended session exits 4 (SESSION_ENDED).",
		(*billing.Client).EndUsage)
}

func (a *app) usageShow() *cobra.Command {
	return a.usageSessionCommand("show --session ID", "Show a usage session: state, receipts, units, value, the receipt waiting for a signature", "",
		(*billing.Client).UsageSession)
}

// usageSessionCommand is a command that calls one billing method on a
// session and prints the session it answers.
func (a *app) usageSessionCommand(use, short, long string, call func(*billing.Client, context.Context, string) (billing.UsageView, error)) *cobra.Command {
	var (
		session string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sessionFlag(cmd, session); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			v, err := call(bc, cmd.Context(), session)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(v)
			}
			return a.printUsage(v)
		},
	}
	cmd.Flags().StringVar(&session, "session", "", "session id")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// sessionFlag checks the required --session before anything connects.
func sessionFlag(cmd *cobra.Command, session string) error {
	if err := requireFlag(cmd, "session"); err != nil {
		return err
	}
	return billing.ValidUsageSessionID(session)
}

func stateName(state, sub string) string {
	if sub == "" || sub == state {
		return state
	}
	return state + "/" + sub
}

func printWaiting(w io.Writer, sr contract.SignRequest) {
	r := sr.Receipt
	fmt.Fprintf(w, "waiting\treceipt %s (seq %d, %d %s, %s, send %d)\n", sr.ReceiptID, r.Seq, r.Units, r.Unit, models.FormatAmount(r.Value, r.Currency), sr.Attempt)
}

func (a *app) printUsage(v billing.UsageView) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "session\t%s\n", v.SessionID)
	fmt.Fprintf(w, "service\t%s\n", v.ServiceID)
	fmt.Fprintf(w, "payer\t%s\n", v.Payer)
	fmt.Fprintf(w, "state\t%s\n", stateName(v.State, v.SubState))
	fmt.Fprintf(w, "receipts signed\t%d\n", v.ReceiptsSigned)
	fmt.Fprintf(w, "units\t%d used of %d paid\n", v.UsedUnits, v.PaidUnits)
	fmt.Fprintf(w, "usage\t%d s, %d bytes received, %d bytes sent\n", v.Seconds, v.BytesReceived, v.BytesSent)
	if v.Currency != "" {
		fmt.Fprintf(w, "value\t%s\n", models.FormatAmount(v.Value, v.Currency))
	} else {
		fmt.Fprintf(w, "value\t%d\n", v.Value)
	}
	if v.Waiting != nil {
		printWaiting(w, *v.Waiting)
	}
	if v.LastError != "" {
		fmt.Fprintf(w, "last error\t%s (%s)\n", v.LastError, models.UsageErrorMeaning[v.LastError])
	}
	if p := v.Pool; p != nil {
		fmt.Fprintf(w, "free-tier pool\tpaid %s of this session (%s given back), last decision %s\n", models.FormatAmount(p.Absorbed, v.Currency),
			models.FormatAmount(p.Released, v.Currency), p.LastServe)
		fmt.Fprintf(w, "pool balance\t%s; the payer absorbed %s today (tier %s)\n", models.FormatAmount(p.Balance, v.Currency),
			models.FormatAmount(p.AbsorbedToday, v.Currency), p.Tier)
	}
	fmt.Fprintf(w, "started\t%s\n", v.StartedAt.Format(time.RFC3339))
	if v.EndedAt != nil {
		fmt.Fprintf(w, "ended\t%s\n", v.EndedAt.Format(time.RFC3339))
	}
	return w.Flush()
}

func (a *app) usageStats() *cobra.Command {
	var (
		payer, service string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "stats --payer PUBKEY [--service ID]",
		Short: "Show a payer's usage statistics per service and mode (paid, free, grace)",
		Long: "Reads the statistics the sessions wrote to Postgres (DATABASE_URL): per service and mode, the time of service, bytes received " +
			"and sent, units and value; grace also counts the sessions that went through grace. Without --service every service of the payer is shown.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "payer"); err != nil {
				return err
			}
			id, svc, err := api.ParseUsageStatsQuery(payer, service)
			if err != nil {
				return flagError(err)
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			v, err := api.LoadUsageStats(cmd.Context(), st, id, svc)
			if err != nil {
				return asTenantNotFound(string(id), err)
			}
			if asJSON {
				return a.printJSON(v)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "payer\t%s\n", v.Payer)
			if len(v.Services) == 0 {
				fmt.Fprintf(w, "services\tnone used yet\n")
			}
			for _, s := range v.Services {
				fmt.Fprintf(w, "\nservice %s\tmode\ttime\tbytes received\tbytes sent\tunits\tvalue\tsessions\n", s.ServiceID)
				for _, m := range []store.UsageStats{s.Paid, s.Free, s.Grace} {
					sessions := "-"
					if m.Mode == store.UsageModeGrace {
						sessions = fmt.Sprint(m.Sessions)
					}
					fmt.Fprintf(w, "\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", m.Mode, time.Duration(m.Seconds)*time.Second, m.BytesReceived, m.BytesSent, m.Units, m.Value, sessions)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&payer, "payer", "", "the payer's Nostr public key (hex or npub)")
	cmd.Flags().StringVar(&service, "service", "", "one catalog service's id (default: every service)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) usageUnban() *cobra.Command {
	var (
		payer, service string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "unban --payer PUBKEY --service ID",
		Short: "Lift a payer's grace ban on a service (an operator's action)",
		Long: "A grace that ends unpaid bans the payer from grace on the service for 50 x its grace period (RECEIPT_BANNED_PKEY_HASH). " +
			"This lifts the ban in Postgres (DATABASE_URL) at once; lifting where there is none changes nothing and says so.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "payer", "service"); err != nil {
				return err
			}
			id, svc, err := api.ParseUsageStatsQuery(payer, service)
			if err != nil {
				return flagError(err)
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			v, err := api.LiftUsageBan(cmd.Context(), st, svc, id, time.Now())
			if err != nil {
				return asTenantNotFound(string(id), err)
			}
			if asJSON {
				return a.printJSON(v)
			}
			switch {
			case v.Lifted && v.ExpiresAt != nil:
				_, err = fmt.Fprintf(a.stdout, "lifted %s's grace ban on %s (it would have expired %s)\n", v.Payer, v.ServiceID, v.ExpiresAt.Format(time.RFC3339))
			case v.Lifted:
				_, err = fmt.Fprintf(a.stdout, "removed %s's expired grace ban on %s\n", v.Payer, v.ServiceID)
			default:
				_, err = fmt.Fprintf(a.stdout, "%s has no grace ban on %s; nothing changed\n", v.Payer, v.ServiceID)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&payer, "payer", "", "the payer's Nostr public key (hex or npub)")
	cmd.Flags().StringVar(&service, "service", "", "the catalog service's id")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// flagError names the flag a validation error is about (payer -> --payer).
func flagError(err error) error {
	var ve *models.ValidationError
	if errors.As(err, &ve) && !strings.HasPrefix(ve.Field, "--") {
		return &models.ValidationError{Field: "--" + ve.Field, Reason: ve.Reason}
	}
	return err
}
