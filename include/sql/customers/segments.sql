-- Written in Redshift SQL (NVL, DATEDIFF); dagspec transpiles it to the warehouse's dialect with sqlglot.
SELECT
    segment,
    NVL(country, '??') AS country,
    COUNT(*) AS customers,
    ROUND(AVG(DATEDIFF(day, signup_date, CAST(:to_date AS DATE))), 1) AS avg_tenure_days
FROM {{ ref('extract_customers') }}
GROUP BY segment, NVL(country, '??')
ORDER BY segment, country
