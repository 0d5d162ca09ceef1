"""A local Spark session that answers requests on stdin, one JSON object
per line, with one JSON line each on stdout. Used by the Spark tier of the
MCP tests (mcp/tests/spark_*.rs); needs pyspark and a Java runtime.

- {"op": "parse", "sql": …}: what Spark's own parser
  (spark.sessionState.sqlParser) reads in the statement: every relation name
  (UnresolvedRelation), table-valued function and CTE name, or its error.
- {"op": "sql", "sql": …}: runs the statement; its columns, Spark types and
  rows, every value cast to STRING (null stays null), or its error.
"""
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql.functions import col


def seq(s):
    return [s.apply(i) for i in range(s.size())]


def walk(plan, out):
    kind = plan.getClass().getSimpleName()
    if kind == "UnresolvedRelation":
        out["relations"].append([str(p) for p in seq(plan.multipartIdentifier())])
    elif kind == "UnresolvedTableValuedFunction":
        out["functions"].append([str(p) for p in seq(plan.name())])
    elif kind == "UnresolvedWith":
        for pair in seq(plan.cteRelations()):
            out["ctes"].append(str(pair._1()))
    # innerChildren holds subquery plans (IN, EXISTS, scalar) and CTE bodies.
    for child in seq(plan.children()) + seq(plan.innerChildren()):
        walk(child, out)


def first_line(e):
    lines = [l for l in str(e).splitlines() if l.strip()]
    return (lines[0] if lines else type(e).__name__)[:500]


def parse(spark, sql):
    out = {"relations": [], "functions": [], "ctes": [], "error": None}
    try:
        walk(spark._jsparkSession.sessionState().sqlParser().parsePlan(sql), out)
    except Exception as e:  # a parse error: Spark would not run it
        out["error"] = first_line(e)
    return out


def run(spark, sql):
    try:
        df = spark.sql(sql)
        fields = df.schema.fields
        rows = df.select([col(f"`{f.name}`").cast("string") for f in fields]).collect() if fields else []
        return {
            "columns": [f.name for f in fields],
            "types": [f.dataType.simpleString() for f in fields],
            "rows": [list(r) for r in rows],
            "error": None,
        }
    except Exception as e:
        return {"error": first_line(e)}


def main():
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        # Databricks SQL warehouses run in ANSI mode.
        .config("spark.sql.ansi.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(json.dumps({"ready": spark.version}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        answer = parse(spark, request["sql"]) if request["op"] == "parse" else run(spark, request["sql"])
        print(json.dumps(answer), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
