package evtool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/adedge/adedge/server/events/ship"
)

// DeliveryRow is one line of the delivery report.
type DeliveryRow struct {
	Key                                  string
	Requests, Fills, Impressions, Clicks int64
	SpendMicros                          int64
}

// CTR is clicks per impression.
func (r *DeliveryRow) CTR() float64 {
	if r.Impressions == 0 {
		return 0
	}
	return float64(r.Clicks) / float64(r.Impressions)
}

// ECPMMicros is spend per thousand impressions.
func (r *DeliveryRow) ECPMMicros() int64 {
	if r.Impressions == 0 {
		return 0
	}
	return r.SpendMicros * 1000 / r.Impressions
}

// byExpr maps --by to the column expression (the same names in the
// events table and the delivery_hourly rollup; hour is the issue hour).
var byExpr = map[string]string{
	"campaign":  "campaign",
	"creative":  "creative",
	"placement": "placement",
	"country":   "country",
	"hour":      "toString(toStartOfHour(%s))",
}

// ByValues are the accepted --by values.
var ByValues = []string{"campaign", "creative", "placement", "country", "hour"}

// CheckBy refuses a --by value the report does not know.
func CheckBy(by string) error {
	if _, ok := byExpr[by]; !ok {
		return fmt.Errorf("--by %q: want one of %s", by, strings.Join(ByValues, ", "))
	}
	return nil
}

// DeliverySQL is the report's query over [from, to) of issue time (the
// hour an ad was served; its impressions and clicks count there too):
// from the delivery_hourly rollup (whole hours, FINAL keeps each hour's
// newest rebuild), or with raw from the events table itself (each event
// once: FINAL, first-seen records; decisions weighted by their sampling).
// Both agree on hour-aligned windows (TestDeliveryRollupAgreesWithRaw).
func DeliverySQL(t *ship.Target, by string, from, to time.Time, raw bool) (string, error) {
	if err := CheckBy(by); err != nil {
		return "", err
	}
	expr := byExpr[by]
	if raw {
		if by == "hour" {
			expr = fmt.Sprintf(expr, "issued")
		}
		return fmt.Sprintf(`SELECT key,
    sumIf(weight, kind = 'ad') AS requests,
    sumIf(weight, kind = 'ad' AND outcome = 'fill') AS fills,
    countIf(kind = 'imp') AS impressions,
    countIf(kind = 'click') AS clicks,
    sumIf(price_micros, kind = 'imp') AS spend_micros
FROM (SELECT %s AS key, kind, weight, outcome, price_micros FROM %s FINAL
      WHERE duplicate = 0 AND kind IN ('ad', 'imp', 'click') AND issued >= toDateTime(%d) AND issued < toDateTime(%d))
GROUP BY key ORDER BY spend_micros DESC, key
FORMAT TabSeparated`, expr, t.TableName(), from.Unix(), to.Unix()), nil
	}
	if by == "hour" {
		expr = fmt.Sprintf(expr, "hour")
	}
	return fmt.Sprintf(`SELECT key, sum(requests) AS requests, sum(fills) AS fills, sum(impressions) AS impressions,
    sum(clicks) AS clicks, sum(spend_micros) AS spend_micros
FROM (SELECT %s AS key, requests, fills, impressions, clicks, spend_micros FROM %s FINAL
      WHERE hour >= toDateTime(%d) AND hour < toDateTime(%d))
GROUP BY key ORDER BY spend_micros DESC, key
FORMAT TabSeparated`, expr, t.RollupName("delivery_hourly"), from.Unix(), to.Unix()), nil
}

// DeliveryOptions choose the report's source.
type DeliveryOptions struct {
	// Raw reads the events table instead of the delivery_hourly rollup.
	Raw bool
	// Refresh rebuilds the window's hours in the rollups first (when no
	// shipper rolls them up, or to include the last minute's events).
	Refresh bool
}

// Delivery runs the delivery report against ClickHouse.
func Delivery(ctx context.Context, c *ship.Client, by string, from, to time.Time, o DeliveryOptions) ([]DeliveryRow, error) {
	q, err := DeliverySQL(c.T, by, from, to, o.Raw)
	if err != nil {
		return nil, err
	}
	if o.Refresh && !o.Raw {
		if err := c.Rebuild(ctx, from, to, time.Now().UnixMilli()); err != nil {
			return nil, err
		}
	}
	out, err := c.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	var rows []DeliveryRow
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("clickhouse answered %q: want 6 columns", sc.Text())
		}
		r := DeliveryRow{Key: unescapeTSV(f[0])}
		for i, p := range []*int64{&r.Requests, &r.Fills, &r.Impressions, &r.Clicks, &r.SpendMicros} {
			if *p, err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("clickhouse answered %q: %v", sc.Text(), err)
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\\`, `\`, `\'`, "'").Replace(s)
}

// WriteDelivery prints the rows as a table or CSV. The CSV header starts
// with BY,impressions,clicks,spend_micros (what billing scripts read).
func WriteDelivery(w io.Writer, by, format string, rows []DeliveryRow) error {
	cols := []string{by, "impressions", "clicks", "spend_micros", "requests", "fills", "ctr", "ecpm_micros"}
	line := func(r *DeliveryRow) []string {
		return []string{r.Key, strconv.FormatInt(r.Impressions, 10), strconv.FormatInt(r.Clicks, 10), strconv.FormatInt(r.SpendMicros, 10),
			strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Fills, 10), strconv.FormatFloat(r.CTR(), 'f', 4, 64), strconv.FormatInt(r.ECPMMicros(), 10)}
	}
	switch format {
	case "csv":
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, strings.Join(cols, ","))
		for i := range rows {
			f := line(&rows[i])
			f[0] = csvField(f[0])
			fmt.Fprintln(bw, strings.Join(f, ","))
		}
		return bw.Flush()
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
		for i := range rows {
			f := line(&rows[i])
			if f[0] == "" {
				f[0] = "(none)"
			}
			fmt.Fprintln(tw, strings.Join(f, "\t")+"\t")
		}
		return tw.Flush()
	}
	return fmt.Errorf("--format %q: want table or csv", format)
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
