// A launcher for cert-manager v1.21.2's controllers, for
// benches/controller_memory.sh; built by benches/support/build-cert-manager.sh.
//
// cert-manager's own command (the module
// github.com/cert-manager/cert-manager/cmd/controller) is not on the Go
// module proxy, and neither is the vcert version its Venafi issuer needs.
// This does with the parent module's packages what that command's app.Run
// does: one ContextFactory (feature gates at their defaults, so
// SecretsFilteredCaching is on: unrelated Secrets are cached as metadata
// only), every default-enabled controller but the Venafi one with 5
// workers, the shared informer factories, and the Prometheus /metrics
// server with its Certificate, Issuer, ClusterIssuer and Challenge
// collectors. Unlike it: no leader election, no healthz server, no config
// file; API QPS 20 / burst 50 (client-side limits apply only when the API
// server has no API Priority and Fairness).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/cert-manager/cert-manager/pkg/controller"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	"github.com/cert-manager/cert-manager/pkg/util"

	challengescontroller "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	orderscontroller "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	shimingresscontroller "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	cracmecontroller "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	crapprovercontroller "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crcacontroller "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsignedcontroller "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	crvaultcontroller "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	certificatesmetricscontroller "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	clusterissuerscontroller "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	issuerscontroller "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system", "namespace of ClusterIssuer Secrets")
	metricsAddr := flag.String("metrics-listen-address", "127.0.0.1:9402", "Prometheus /metrics address")
	workers := flag.Int("concurrent-workers", 5, "workers per controller")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %s: %v\n", what, err)
		os.Exit(1)
	}

	opts := controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        *clusterResourceNamespace,
			ClusterIssuerAmbientCredentials: true,
		},
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 "quay.io/jetstack/cert-manager-acmesolver:" + util.AppVersion,
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01CheckAuthoritative:           true,
			DNS01Nameservers:                  dnsutil.RecursiveNameservers,
			DNS01CheckRetryPeriod:             10 * time.Second,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                "cert-manager.io",
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
	}
	factory, err := controller.NewContextFactory(ctx, opts)
	if err != nil {
		fail("building the controller context", err)
	}
	base, err := factory.Build()
	if err != nil {
		fail("building the controller context", err)
	}

	// The collectors behind cert-manager's per-Certificate, per-Issuer and
	// per-Challenge series (certmanager_certificate_expiration_timestamp_seconds, ...).
	cm := base.SharedInformerFactory.Certmanager().V1()
	base.Metrics.SetupACMECollector(base.SharedInformerFactory.Acme().V1().Challenges().Lister())
	base.Metrics.SetupCertificateCollector(cm.Certificates().Lister())
	base.Metrics.SetupIssuerCollector(cm.Issuers().Lister())
	base.Metrics.SetupClusterIssuerCollector(cm.ClusterIssuers().Lister())

	ln, err := net.Listen("tcp", *metricsAddr)
	if err != nil {
		fail("listening for metrics", err)
	}
	metricsServer := base.Metrics.NewServer(ln)
	go func() { _ = metricsServer.Serve(ln) }()

	// cert-manager's DefaultEnabledControllers, less the Venafi
	// CertificateRequest controller (its vcert dependency is not on the
	// module proxy).
	enabled := sets.New(
		issuerscontroller.ControllerName, clusterissuerscontroller.ControllerName,
		certificatesmetricscontroller.ControllerName, shimingresscontroller.ControllerName,
		orderscontroller.ControllerName, challengescontroller.ControllerName,
		cracmecontroller.CRControllerName, crapprovercontroller.ControllerName,
		crcacontroller.CRControllerName, crselfsignedcontroller.CRControllerName,
		crvaultcontroller.CRControllerName, trigger.ControllerName, issuing.ControllerName,
		keymanager.ControllerName, requestmanager.ControllerName, readiness.ControllerName,
		revisionmanager.ControllerName,
	)
	var wg sync.WaitGroup
	for name, construct := range controller.Known() {
		if !enabled.Has(name) {
			continue
		}
		iface, err := construct(factory)
		if err != nil {
			fail("starting controller "+name, err)
		}
		wg.Add(1)
		go func(name string, iface controller.Interface) {
			defer wg.Done()
			if err := iface.Run(*workers, ctx); err != nil {
				fail("running controller "+name, err)
			}
		}(name, iface)
	}
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.SharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	fmt.Fprintf(os.Stderr, "cert-manager-controller %s: %d controllers started\n", util.AppVersion, enabled.Len())
	wg.Wait()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = metricsServer.Shutdown(shutdown)
}
