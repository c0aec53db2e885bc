#!/usr/bin/env python3
"""Reference answers of Spark MLlib (PySpark 4.3.0) for delta-ml's end-to-end tests.

Writes, next to this script:
  breast_cancer_200x5.csv, iris.csv, diabetes.csv  — the inputs (from scikit-learn's bundled data)
  mllib_refs.json                                  — MLlib's fitted values on them

Run once with the bench venv (../shared/bench/ml/setup.sh):
  $HOME/.cache/delta-bench/mlvenv/bin/python delta-ml/tests/data/make_mllib_refs.py
"""
import json
import os

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

HERE = os.path.dirname(os.path.abspath(__file__))


def write_csv(name, X, y):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(",".join([f"x{i}" for i in range(X.shape[1])] + ["label"]) + "\n")
        for row, t in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(t)) + "\n")


def main():
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator, RegressionEvaluator
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.regression import LinearRegression
    from pyspark.sql import SparkSession

    b = load_breast_cancer()
    Xb, yb = b.data[:200, :5], b.target[:200].astype(float)
    ir = load_iris()
    Xi, yi = ir.data, ir.target.astype(float)
    d = load_diabetes()
    Xd, yd = d.data, d.target.astype(float)
    write_csv("breast_cancer_200x5.csv", Xb, yb)
    write_csv("iris.csv", Xi, yi)
    write_csv("diabetes.csv", Xd, yd)

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def df(X, y):
        return spark.createDataFrame([(float(t), Vectors.dense(x)) for x, t in zip(X, y)], ["label", "features"])

    bdf, idf, ddf = df(Xb, yb), df(Xi, yi), df(Xd, yd)
    out = {"spark_version": spark.version}
    lr_cases = {
        "binomial_l2_std": dict(regParam=0.1),
        "binomial_l2_nostd": dict(regParam=0.1, standardization=False),
        "binomial_enet": dict(regParam=0.05, elasticNetParam=0.5),
        "binomial_l1_nostd": dict(regParam=0.02, elasticNetParam=1.0, standardization=False),
        "binomial_noint": dict(regParam=0.1, fitIntercept=False),
    }
    for name, kw in lr_cases.items():
        m = LogisticRegression(**kw).fit(bdf)
        pred = m.transform(bdf)
        out["lr_" + name] = {
            "params": kw,
            "coefficients": m.coefficients.toArray().tolist(),
            "intercept": m.intercept,
            "iterations": m.summary.totalIterations,
            "auc": BinaryClassificationEvaluator().evaluate(pred),
            "first_probability": pred.first().probability.toArray().tolist(),
        }
    for name, kw in {"multinomial_l2": dict(regParam=0.01), "multinomial_enet": dict(regParam=0.01, elasticNetParam=0.3),
                     "multinomial_noreg": dict(regParam=0.0, maxIter=30)}.items():
        m = LogisticRegression(**kw).fit(idf)
        pred = m.transform(idf)
        out["lr_" + name] = {
            "params": kw,
            "coefficientMatrix": m.coefficientMatrix.toArray().tolist(),
            "interceptVector": m.interceptVector.toArray().tolist(),
            "accuracy": MulticlassClassificationEvaluator(metricName="accuracy").evaluate(pred),
            "f1": MulticlassClassificationEvaluator().evaluate(pred),
            "logLoss": MulticlassClassificationEvaluator(metricName="logLoss").evaluate(pred),
        }
    lin_cases = {
        "ols": dict(),
        "l2_normal": dict(regParam=0.1, solver="normal"),
        "l2_lbfgs": dict(regParam=0.1, solver="l-bfgs"),
        "l2_normal_nostd": dict(regParam=0.1, solver="normal", standardization=False),
        "enet_normal": dict(regParam=0.5, elasticNetParam=0.5, solver="normal"),
        "enet_lbfgs": dict(regParam=0.5, elasticNetParam=0.5, solver="l-bfgs"),
        "noint": dict(fitIntercept=False),
    }
    for name, kw in lin_cases.items():
        m = LinearRegression(**kw).fit(ddf)
        pred = m.transform(ddf)
        out["linreg_" + name] = {
            "params": kw,
            "coefficients": m.coefficients.toArray().tolist(),
            "intercept": m.intercept,
            "rmse": RegressionEvaluator().evaluate(pred),
            "r2": RegressionEvaluator(metricName="r2").evaluate(pred),
        }
    # Trees. On inputs under 10000 rows MLlib uses every row for the thresholds and, without
    # bagging or feature subsets, is deterministic: predictions compare exactly.
    from pyspark.ml.classification import DecisionTreeClassifier, GBTClassifier, RandomForestClassifier
    from pyspark.ml.regression import DecisionTreeRegressor, GBTRegressor, RandomForestRegressor

    def rows(pred, cols):
        return [[(r[c].toArray().tolist() if hasattr(r[c], "toArray") else r[c]) for c in cols] for r in pred.collect()]

    tree_cases = {
        "dt_cls_bc": (DecisionTreeClassifier(maxDepth=4), bdf, True),
        "dt_cls_iris_entropy": (DecisionTreeClassifier(maxDepth=3, impurity="entropy"), idf, True),
        "dt_cls_bc_mininst": (DecisionTreeClassifier(maxDepth=6, minInstancesPerNode=10, minInfoGain=0.01), bdf, True),
        "dt_reg_diabetes": (DecisionTreeRegressor(maxDepth=4, minInstancesPerNode=5), ddf, False),
        "dt_reg_diabetes_bins8": (DecisionTreeRegressor(maxDepth=3, maxBins=8), ddf, False),
        "gbt_cls_bc": (GBTClassifier(maxIter=10, maxDepth=3), bdf, True),
        "gbt_reg_diabetes": (GBTRegressor(maxIter=10, maxDepth=3), ddf, False),
        "gbt_reg_diabetes_abs": (GBTRegressor(maxIter=8, maxDepth=2, lossType="absolute"), ddf, False),
    }
    for name, (est, data, cls) in tree_cases.items():
        m = est.fit(data)
        pred = m.transform(data)
        rec = {"params": {k.name: v for k, v in est.extractParamMap().items() if est.isSet(k)},
               "rows": rows(pred, ["rawPrediction", "probability", "prediction"] if cls else ["prediction"]),
               "featureImportances": m.featureImportances.toArray().tolist()}
        if hasattr(m, "treeWeights"):
            rec["treeWeights"] = list(m.treeWeights)
            rec["numNodes"] = [t.numNodes for t in m.trees]
        else:
            rec["numNodes"] = m.numNodes
            rec["depth"] = m.depth
        out[name] = rec
    for name, (est, data, metric) in {
        "rf_cls_iris": (RandomForestClassifier(numTrees=20, maxDepth=4, seed=1), idf, "accuracy"),
        "rf_cls_bc": (RandomForestClassifier(numTrees=30, maxDepth=5, seed=1), bdf, "areaUnderROC"),
        "rf_reg_diabetes": (RandomForestRegressor(numTrees=20, maxDepth=5, seed=1), ddf, "r2"),
    }.items():
        m = est.fit(data)
        pred = m.transform(data)
        ev = (MulticlassClassificationEvaluator(metricName=metric) if metric == "accuracy"
              else BinaryClassificationEvaluator() if metric == "areaUnderROC" else RegressionEvaluator(metricName=metric))
        out[name] = {"params": {k.name: v for k, v in est.extractParamMap().items() if est.isSet(k)},
                     "metric": metric, "value": ev.evaluate(pred), "numTrees": len(m.trees),
                     "totalNumNodes": m.totalNumNodes}
    # KMeans with cosine distance on iris (trainingCost and cluster sizes).
    from pyspark.ml.clustering import KMeans
    for name, kw in {"kmeans_cosine_iris": dict(k=3, distanceMeasure="cosine", seed=1, maxIter=50),
                     "kmeans_cosine_iris_k5": dict(k=5, distanceMeasure="cosine", seed=3, maxIter=50)}.items():
        km = KMeans(**kw).fit(idf)
        sizes = sorted(km.summary.clusterSizes)
        out[name] = {"params": kw, "trainingCost": km.summary.trainingCost, "clusterSizes": sizes,
                     "centers": [c.tolist() for c in km.clusterCenters()]}
    spark.stop()
    with open(os.path.join(HERE, "mllib_refs.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote mllib_refs.json")


if __name__ == "__main__":
    main()
