package ops

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// certExpiryDesc is one family for every component, so that one alert watches them all.
var certExpiryDesc = prometheus.NewDesc("keygate_certificate_expiry_timestamp_seconds",
	"Unix time at which a certificate the process presents expires (notAfter of the first certificate in the file), by cert (the flag naming the file); read from the file at each scrape, so a rotated file shows its new date.",
	[]string{"cert"}, nil)

// certErrorsDesc reports a configured certificate file that cannot be read at scrape time.
var certErrorsDesc = prometheus.NewDesc("keygate_certificate_read_errors",
	"1 for a certificate file (by cert, the flag naming it) that could not be read or parsed at this scrape, else 0.",
	[]string{"cert"}, nil)

// CertExpiry registers with reg a collector of the certificates in files (flag name → PEM
// file; empty file names are skipped, they are not configured).
func CertExpiry(reg prometheus.Registerer, files map[string]string) error {
	c := certCollector{}
	for flag, file := range files {
		if file != "" {
			c[flag] = file
		}
	}
	return reg.Register(c)
}

type certCollector map[string]string

func (c certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certExpiryDesc
	ch <- certErrorsDesc
}

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	for flag, file := range c {
		failed := 0.0
		if notAfter, err := readNotAfter(file); err == nil {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(notAfter), flag)
		} else {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(certErrorsDesc, prometheus.GaugeValue, failed, flag)
	}
}

// readNotAfter is the Unix notAfter of the first certificate in the PEM file.
func readNotAfter(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return 0, fmt.Errorf("%s: no PEM certificate", file)
		}
		if b.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", file, err)
			}
			return cert.NotAfter.Unix(), nil
		}
	}
}
