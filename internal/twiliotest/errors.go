package twiliotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Messages Twilio's REST API returns for the codes tests script most often.
// "{To}" is replaced with the request's To number. Used when a Failure
// has no Message of its own.
var knownMessages = map[int]string{
	20003: "Authenticate",
	20004: "Method not allowed",
	20429: "Too Many Requests",
	20500: "Internal Server Error",
	20503: "Service Unavailable",
	21211: "The 'To' number {To} is not a valid phone number.",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {To}",
	21602: "Message body is required.",
	21603: "A 'From' phone number is required.",
	21604: "A 'To' phone number is required.",
	21610: "Attempt to send to unsubscribed recipient",
	21614: "'To' number is not a valid mobile number",
	21617: "The concatenated message body exceeds the 1600 character limit.",
	21619: "A text message body or media urls must be specified.",
	// Delivery errors: they reach us in status callbacks, not as REST
	// errors, but a test may still script them.
	30003: "Unreachable destination handset",
	30005: "Unknown destination handset",
	30006: "Landline or unreachable carrier",
	30007: "Message filtered",
	30008: "Unknown error",
}

// restError is Twilio's JSON error body, field for field. twilio-go
// decodes it into client.TwilioRestError; note that the Status it reports
// comes from this body, not from the HTTP status line.
type restError struct {
	Code     int    `json:"code"`
	Detail   string `json:"detail,omitempty"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, restError{
		Code:     code,
		Message:  message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	})
}

// writeFailure answers with f, filling in Twilio's message for its code.
func writeFailure(w http.ResponseWriter, f Failure, to string) {
	msg := f.Message
	if msg == "" {
		msg = knownMessages[f.Code]
	}
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	writeError(w, f.Status, f.Code, strings.ReplaceAll(msg, "{To}", to))
}

func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	writeJSON(w, http.StatusUnauthorized, restError{
		Code:     20003,
		Detail:   "Your AccountSid or AuthToken was incorrect.",
		Message:  "Authenticate",
		MoreInfo: "https://www.twilio.com/docs/errors/20003",
		Status:   http.StatusUnauthorized,
	})
}

func writeNotFound(w http.ResponseWriter, path string) {
	writeError(w, http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
