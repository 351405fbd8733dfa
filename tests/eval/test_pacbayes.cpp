// PAC-Bayes bounds against values computed independently (a separate bisection in float64, the
// formulas of Seeger 2002, McAllester 1999, Rivasplata et al. 2019 (quad), Thiemann et al. 2017).
#include <gtest/gtest.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/eval/pacbayes.h"

namespace credence {

TEST(PacBayes, KlInverseIsTheLargestRiskWithinTheBudget) {
  EXPECT_NEAR(kl_inverse(0.1, 0.05), 0.2200786011069245, 1e-10);
  EXPECT_NEAR(kl_inverse(0.0, 0.01), 0.009950166250831949, 1e-10);  // 1 - exp(-c) at q = 0
  EXPECT_NEAR(kl_inverse(0.3, 0.2), 0.61263272402374, 1e-10);
  double p = kl_inverse(0.2, 0.1);
  EXPECT_NEAR(binary_kl(0.2, p), 0.1, 1e-9);  // on the boundary
  EXPECT_NEAR(kl_inverse(0.4, 0.0), 0.4, 1e-6);  // no budget: no slack (up to rounding of kl near 0)
  EXPECT_GT(kl_inverse(0.2, 0.2), p);  // monotone in the budget
  EXPECT_THROW(kl_inverse(1.5, 0.1), InvalidArgument);
}

TEST(PacBayes, BoundsMatchTheirFormulas) {
  // n = 30,000, KL = 1,500, delta = 0.025, empirical risk 0.12: complexity 0.0503178834...
  EXPECT_NEAR(pacbayes_complexity(1500, 30000, 0.025), 0.05031788343216654, 1e-12);
  EXPECT_NEAR(pacbayes_bound(PacBayesBound::Seeger, 0.12, 1500, 30000, 0.025), 0.2466945535303045, 1e-9);
  EXPECT_NEAR(pacbayes_bound(PacBayesBound::McAllester, 0.12, 1500, 30000, 0.025), 0.27861570450646833, 1e-12);
  EXPECT_NEAR(pacbayes_bound(PacBayesBound::Quad, 0.12, 1500, 30000, 0.025), 0.29118219337026635, 1e-12);
  EXPECT_NEAR(pacbayes_bound(PacBayesBound::Lambda, 0.12, 1500, 30000, 0.025, 0.5), 0.29418102248577743, 1e-12);
  // The kl bound is the tightest of the four (Pinsker makes classic and quad relaxations of it).
  for (double r : {0.01, 0.1, 0.3})
    EXPECT_LE(pacbayes_bound(PacBayesBound::Seeger, r, 800, 30000, 0.05),
              pacbayes_bound(PacBayesBound::McAllester, r, 800, 30000, 0.05));
  EXPECT_EQ(parse_pacbayes_bound("quad"), PacBayesBound::Quad);
  EXPECT_THROW(parse_pacbayes_bound("tight"), InvalidArgument);
  EXPECT_THROW(pacbayes_bound(PacBayesBound::Lambda, 0.1, 10, 100, 0.05, 2.0), InvalidArgument);
  EXPECT_THROW(pacbayes_bound(PacBayesBound::Seeger, 1.2, 10, 100, 0.05), InvalidArgument);
  EXPECT_THROW(pacbayes_complexity(10, 100, 0.0), InvalidArgument);
}

TEST(PacBayes, SampledRiskThenCertificate) {
  // 10,000 sampled networks with error 0.125, delta' = 0.01, then the kl bound as above.
  double risk = sampled_risk_bound(0.125, 10000, 0.01);
  EXPECT_NEAR(risk, 0.1360293121741583, 1e-9);
  EXPECT_NEAR(pacbayes_bound(PacBayesBound::Seeger, risk, 1500, 30000, 0.025), 0.2670332314330691, 1e-9);
  EXPECT_LT(sampled_risk_bound(0.125, 100000, 0.01), risk);  // more samples, smaller term
}

}  // namespace credence
