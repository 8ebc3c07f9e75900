package events

import (
	"encoding/hex"
	"strconv"
	"time"
)

var envNames = [...]string{"production", "staging"}

var outcomeNames = [...]string{"none", "fill", "no_fill", "error"}

// AppendJSON appends e as one JSON object whose members are the ClickHouse
// table's columns (docs/EVENTS.md): the shipper's JSONEachRow rows and
// `adtool events cat --json` are the same bytes.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"day":"`...)
	b = time.UnixMilli(e.Issued).UTC().AppendFormat(b, "2006-01-02")
	b = append(b, `","kind":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, `","event_id":"`...)
	b = hex.AppendEncode(b, e.ID[:])
	b = append(b, `","time":`...)
	b = strconv.AppendInt(b, floorDiv(e.Time, 1000), 10)
	b = append(b, `,"time_ms":`...)
	b = strconv.AppendInt(b, e.Time-floorDiv(e.Time, 1000)*1000, 10)
	b = append(b, `,"issued":`...)
	b = strconv.AppendInt(b, floorDiv(e.Issued, 1000), 10)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendInt(b, int64(e.Flags&FlagDuplicate), 10)
	b = append(b, `,"env":"`...)
	if int(e.Env) < len(envNames) {
		b = append(b, envNames[e.Env]...)
	} else {
		b = strconv.AppendInt(b, int64(e.Env), 10)
	}
	b = append(b, `","test_code":`...)
	b = strconv.AppendInt(b, int64(e.Test), 10)
	b = append(b, `,"shard":`...)
	b = strconv.AppendInt(b, int64(e.Shard), 10)
	b = append(b, `,"outcome":"`...)
	if int(e.Outcome) < len(outcomeNames) {
		b = append(b, outcomeNames[e.Outcome]...)
	}
	b = append(b, `","format":`...)
	b = strconv.AppendInt(b, int64(e.Format), 10)
	b = append(b, `,"price_micros":`...)
	b = strconv.AppendInt(b, e.PriceMicros, 10)
	b = append(b, `,"cap_period":`...)
	b = strconv.AppendUint(b, uint64(e.CapPeriod), 10)
	b = append(b, `,"weight":`...)
	b = strconv.AppendUint(b, uint64(e.Weight), 10)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendUint(b, uint64(e.LatencyUS), 10)
	b = append(b, `,"share_bp":`...)
	b = strconv.AppendUint(b, uint64(e.ShareBP), 10)
	b = append(b, `,"device_hash":`...)
	b = strconv.AppendUint(b, e.DeviceHash, 10)
	b = append(b, `,"privacy":`...)
	b = strconv.AppendUint(b, uint64(e.Privacy), 10)
	b = append(b, `,"privacy_signals":`...)
	b = strconv.AppendUint(b, uint64(e.PrivacySignals), 10)
	b = append(b, `,"token_version":`...)
	b = strconv.AppendUint(b, uint64(e.TokenVersion), 10)
	for i, f := range e.fields() {
		b = append(b, `,"`...)
		b = append(b, FieldNames[i]...)
		b = append(b, `":`...)
		b = appendJSONString(b, *f)
	}
	return append(b, '}')
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// appendJSONString quotes s, escaping what JSON requires; other bytes pass
// through (ids are ASCII; ClickHouse stores bytes).
func appendJSONString(b, s []byte) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
