// millrace step wrapper for Go: call the script's main, report the outcome to the step API.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"mymod/inner"
)

type stepError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

type report struct {
	Ok     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *stepError      `json:"error,omitempty"`
}

func failure(name string, err error) report {
	return report{Error: &stepError{Name: name, Message: err.Error()}}
}

func run() (out report) {
	defer func() {
		if problem := recover(); problem != nil {
			out = report{Error: &stepError{Name: "panic", Message: fmt.Sprint(problem), Stack: string(debug.Stack())}}
		}
	}()
	var params []string
	args := map[string]json.RawMessage{}
	for file, into := range map[string]interface{}{"params.json": &params, "args.json": &args} {
		data, err := os.ReadFile(file)
		if err == nil {
			err = json.Unmarshal(data, into)
		}
		if err != nil {
			return failure("ArgumentError", err)
		}
	}
	result, err := inner.MillraceRun(params, args)
	if err != nil {
		// Windmill prints main's error and exits 1: an ExecutionErr carrying the message.
		fmt.Println(err)
		return failure("ExecutionErr", err)
	}
	encoded, err := json.Marshal(result)
	if err != nil {
		return failure("ResultError", err)
	}
	return report{Ok: true, Result: encoded}
}

// post sends the report, retrying while the step API cannot be reached, as the other wrappers do.
func post(body []byte) int {
	retry, err := strconv.Atoi(os.Getenv("MILLRACE_API_RETRY_S"))
	if err != nil {
		retry = 120
	}
	deadline, pause := time.Now().Add(time.Duration(retry)*time.Second), time.Second
	for {
		request, _ := http.NewRequest("POST", os.Getenv("MILLRACE_API_URL")+"/v1/report", bytes.NewReader(body))
		request.Header.Set("Authorization", "Bearer "+os.Getenv("MILLRACE_TOKEN"))
		request.Header.Set("Content-Type", "application/json")
		if pod := os.Getenv("MILLRACE_POD"); pod != "" {
			// The step's own pod, whose log the step API keeps the end of with the report.
			request.Header.Set("X-Millrace-Pod", pod)
		}
		response, err := http.DefaultClient.Do(request)
		status := 0
		if err == nil {
			status = response.StatusCode
			response.Body.Close()
		}
		if (status != 0 && status != 502 && status != 503 && status != 504) || time.Now().After(deadline) {
			return status
		}
		time.Sleep(pause)
		if pause < 4*time.Second {
			pause *= 2
		}
	}
}

func main() {
	body, _ := json.Marshal(run())
	if post(body) == http.StatusRequestEntityTooLarge {
		post([]byte(`{"ok":false,"error":{"name":"ResultError","message":"the result is over the step API's size limit"}}`))
	}
}
