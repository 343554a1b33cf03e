# Reference numbers for the analysis golden tests (test_analysis_golden.py), from R's survival and rms.
# Usage:  python export_datasets.py /tmp/ds && Rscript make_reference.R /tmp/ds > reference.csv
# Made with R 4.2.2, survival 3.5-3, rms 6.5-0 (Efron ties, R's defaults everywhere else).
suppressPackageStartupMessages({library(survival); library(rms)})
args <- commandArgs(trailingOnly = TRUE)
folder <- args[1]
out <- function(name, value) cat(sprintf("%s,%.10g\n", name, value))
cat("quantity,value\n")
out("meta.r_major", as.numeric(R.version$major))

rossi <- read.csv(file.path(folder, "rossi.csv"))
# Linear Cox model (the textbook example).
linear <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = rossi, ties = "efron")
for (term in names(coef(linear))) {
  out(paste0("rossi_linear.coef.", term), coef(linear)[[term]])
  out(paste0("rossi_linear.se.", term), sqrt(diag(vcov(linear)))[[term]])
}
out("rossi_linear.loglik", linear$loglik[2])
out("rossi_linear.lr_chi2", 2 * diff(linear$loglik))
out("rossi_linear.concordance", concordance(linear)$concordance)
# Splines: rms rcs (Harrell's basis, norm = 2), knots of the 432 rows; coefficients from coxph run to full
# convergence (eps 1e-12), since rms::cph stops early.
dd <- datadist(rossi); options(datadist = "dd")
spline <- cph(Surv(week, arrest) ~ fin + rcs(age, 4) + race + wexp + mar + paro + rcs(prio, 3), data = rossi,
              x = TRUE, y = TRUE)
age_knots <- attr(rcs(rossi$age, 4), "parms"); prio_knots <- attr(rcs(rossi$prio, 3), "parms")
for (i in seq_along(age_knots)) out(paste0("rossi_spline.knot.age.", i), age_knots[i])
for (i in seq_along(prio_knots)) out(paste0("rossi_spline.knot.prio.", i), prio_knots[i])
out("rossi_spline.loglik_rms_cph", spline$loglik[2])  # cph stops at eps = 1e-4: coefficients ~1e-3 off
out("rossi_spline.concordance", concordance(coxph(Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp +
                                                      mar + paro + rcs(prio, prio_knots), data = rossi))$concordance)
full <- coxph(Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp + mar + paro + rcs(prio, prio_knots),
              data = rossi, control = coxph.control(eps = 1e-12, iter.max = 100))
coefficient_names <- c("fin", "age", "age'", "age''", "race", "wexp", "mar", "paro", "prio", "prio'")
for (i in seq_along(coef(full))) {
  out(paste0("rossi_spline.coef.", coefficient_names[i]), coef(full)[[i]])
  out(paste0("rossi_spline.se.", coefficient_names[i]), sqrt(diag(vcov(full)))[[i]])
}
out("rossi_spline.loglik", full$loglik[2])
reduced_formulas <- list(
  fin = Surv(week, arrest) ~ rcs(age, age_knots) + race + wexp + mar + paro + rcs(prio, prio_knots),
  age = Surv(week, arrest) ~ fin + race + wexp + mar + paro + rcs(prio, prio_knots),
  race = Surv(week, arrest) ~ fin + rcs(age, age_knots) + wexp + mar + paro + rcs(prio, prio_knots),
  wexp = Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + mar + paro + rcs(prio, prio_knots),
  mar = Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp + paro + rcs(prio, prio_knots),
  paro = Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp + mar + rcs(prio, prio_knots),
  prio = Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp + mar + paro)
for (name in names(reduced_formulas)) {
  reduced <- coxph(reduced_formulas[[name]], data = rossi)
  out(paste0("rossi_spline.drop_one.", name), 2 * (full$loglik[2] - reduced$loglik[2]))
}
age_linear <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + rcs(prio, prio_knots), data = rossi)
out("rossi_spline.nonlinearity.age", 2 * (full$loglik[2] - age_linear$loglik[2]))
prio_linear <- coxph(Surv(week, arrest) ~ fin + rcs(age, age_knots) + race + wexp + mar + paro + prio, data = rossi)
out("rossi_spline.nonlinearity.prio", 2 * (full$loglik[2] - prio_linear$loglik[2]))
# Comparison: what age and prio as splines add to fin + race + wexp + mar + paro.
base <- coxph(Surv(week, arrest) ~ fin + race + wexp + mar + paro, data = rossi)
out("rossi_comparison.lr_chi2", 2 * (full$loglik[2] - base$loglik[2]))
out("rossi_comparison.concordance_base", concordance(base)$concordance)
# Contrast: hazard ratio of age 40 vs 20 in the spline model, with its Wald 95 % CI.
contrast <- summary(spline, age = c(20, 40), prio = c(2, 6))
age_row <- which(rownames(contrast) == "age") + 1
out("rossi_spline.contrast.age_40_vs_20.hr", contrast[age_row, "Effect"])
out("rossi_spline.contrast.age_40_vs_20.low", contrast[age_row, "Lower 0.95"])
out("rossi_spline.contrast.age_40_vs_20.high", contrast[age_row, "Upper 0.95"])

lung <- read.csv(file.path(folder, "lung.csv"))
# lifelines' lung codes status 1 = death, 0 = censored (R's original codes 2 and 1).
reverse <- survfit(Surv(time, 1 - status) ~ 1, data = lung)
q <- quantile(reverse, c(0.25, 0.5, 0.75))$quantile
out("lung.follow_up.q1", q[1]); out("lung.follow_up.median", q[2]); out("lung.follow_up.q3", q[3])
km_log <- survfit(Surv(time, status) ~ 1, data = lung)  # conf.type = "log", R's default
km_loglog <- survfit(Surv(time, status) ~ 1, data = lung, conf.type = "log-log")
out("lung.km.median", summary(km_log)$table[["median"]])
out("lung.km.median_low_log", summary(km_log)$table[["0.95LCL"]])
out("lung.km.median_high_log", summary(km_log)$table[["0.95UCL"]])
out("lung.km.median_low_loglog", summary(km_loglog)$table[["0.95LCL"]])
out("lung.km.median_high_loglog", summary(km_loglog)$table[["0.95UCL"]])
by_sex <- survfit(Surv(time, status) ~ sex, data = lung)
out("lung.km.median.sex1", summary(by_sex)$table[1, "median"])
out("lung.km.median.sex2", summary(by_sex)$table[2, "median"])
out("lung.km.median_low_log.sex2", summary(by_sex)$table[2, "0.95LCL"])
out("lung.km.median_high_log.sex2", summary(by_sex)$table[2, "0.95UCL"])
# A Cox model with a categorical (ph.ecog as a factor, reference 0; the one patient with 3 dropped) and
# complete cases over age, sex, ph.ecog, wt.loss.
complete <- lung[complete.cases(lung[, c("age", "sex", "ph.ecog", "wt.loss")]) & lung$ph.ecog < 3, ]
complete$ecog <- factor(complete$ph.ecog)
lung_cox <- coxph(Surv(time, status) ~ age + factor(sex) + ecog + wt.loss, data = complete)
out("lung_cox.n", lung_cox$n)
out("lung_cox.events", lung_cox$nevent)
out("lung_cox.loglik", lung_cox$loglik[2])
for (term in names(coef(lung_cox))) out(paste0("lung_cox.coef.", term), coef(lung_cox)[[term]])
out("lung_cox.concordance", concordance(lung_cox)$concordance)
out("lung_cox.drop_one.ecog", 2 * (lung_cox$loglik[2] -
    coxph(Surv(time, status) ~ age + factor(sex) + wt.loss, data = complete)$loglik[2]))

gbsg <- read.csv(file.path(folder, "gbsg2.csv"))
membership <- glm(I(horTh == "yes") ~ age + menostat + tsize + tgrade + pnodes + progrec + estrec, data = gbsg,
                  family = binomial)
out("gbsg2.membership_auc", Hmisc::somers2(fitted(membership), as.numeric(gbsg$horTh == "yes"))[["C"]])
out("gbsg2.table1.age", wilcox.test(age ~ horTh, data = gbsg)$p.value)
out("gbsg2.table1.tsize", wilcox.test(tsize ~ horTh, data = gbsg)$p.value)
out("gbsg2.table1.menostat", chisq.test(table(gbsg$menostat, gbsg$horTh), correct = FALSE)$p.value)
out("gbsg2.table1.menostat_yates", chisq.test(table(gbsg$menostat, gbsg$horTh))$p.value)
out("gbsg2.table1.tgrade", chisq.test(table(gbsg$tgrade, gbsg$horTh), correct = FALSE)$p.value)
out("gbsg2.table1_by_tgrade.age", kruskal.test(age ~ tgrade, data = gbsg)$p.value)
out("gbsg2.table1_by_tgrade.menostat", chisq.test(table(gbsg$menostat, gbsg$tgrade), correct = FALSE)$p.value)
# Fisher's exact test: menopausal status by therapy among the first 40 patients (expected counts under 5).
small <- gbsg[1:40, ]
out("gbsg2_small.table1.menostat", fisher.test(table(small$menostat, small$horTh))$p.value)
out("gbsg2_small.table1.age", wilcox.test(age ~ horTh, data = small)$p.value)
gbsg_cox <- coxph(Surv(time, cens) ~ horTh + age + menostat + tsize + tgrade + pnodes + progrec + estrec,
                  data = gbsg)
out("gbsg2_cox.loglik", gbsg_cox$loglik[2])
for (term in names(coef(gbsg_cox))) out(paste0("gbsg2_cox.coef.", term), coef(gbsg_cox)[[term]])
out("gbsg2_cox.concordance", concordance(gbsg_cox)$concordance)
# Fisher's exact test on r x c tables (network algorithm in R; enumeration in table1.py).
out("fisher.2x3", fisher.test(matrix(c(3, 1, 1, 4, 2, 0), nrow = 2))$p.value)
out("fisher.3x3", fisher.test(matrix(c(8, 3, 2, 5, 6, 1, 2, 9, 4), nrow = 3))$p.value)
