package health

import (
	"net/http"
	"strconv"
	"time"
)

// AdminHandler serves the health side of the control plane, for the admin
// port (loopback by default) only:
//
//	POST /admin/drain           start the drain (drain() is the process's
//	                            shutdown trigger; the same path as SIGTERM)
//	POST /admin/maint?on=BOOL   maintenance on or off (agent says maint)
//	GET  /admin/health          the /health body, whatever the status
func (s *State) AdminHandler(drain func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/admin/drain", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, `{"error":"use POST"}`, http.StatusMethodNotAllowed)
			return
		}
		s.Drain()
		if drain != nil {
			drain()
		}
		s.writeJSON(w, http.StatusAccepted)
	})
	mux.HandleFunc("/admin/maint", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, `{"error":"use POST"}`, http.StatusMethodNotAllowed)
			return
		}
		on, err := strconv.ParseBool(r.URL.Query().Get("on"))
		if err != nil {
			http.Error(w, `{"error":"want ?on=true or ?on=false"}`, http.StatusBadRequest)
			return
		}
		s.SetMaint(on)
		s.writeJSON(w, http.StatusOK)
	})
	mux.HandleFunc("/admin/health", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK)
	})
	return mux
}

func (s *State) writeJSON(w http.ResponseWriter, code int) {
	body, _ := s.AppendJSON(make([]byte, 0, 1024), time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
