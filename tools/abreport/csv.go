package abreport

import (
	"encoding/csv"
	"io"
)

type csvWriter struct{ w *csv.Writer }

func newCSV(w io.Writer) *csvWriter { return &csvWriter{csv.NewWriter(w)} }

func (c *csvWriter) row(f ...string) { _ = c.w.Write(f) }

func (c *csvWriter) flush() error {
	c.w.Flush()
	return c.w.Error()
}
